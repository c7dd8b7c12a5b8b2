"""The portal role (マイナポータル): a person's own view and registrations. So far only the pure
checks of public-funds account registration (:mod:`mynumber.portal.accounts`)."""

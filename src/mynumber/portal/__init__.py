"""The portal role (マイナポータル): a person's own view and registrations.

So far public-funds accounts (公金受取口座): the pure checks (:mod:`mynumber.portal.accounts`),
the statement a card signs to authorise one registration (:mod:`mynumber.portal.authorisation`),
the service with its own database (:mod:`mynumber.portal.service`) and the HTTP routes under
``/api/portal`` (:mod:`mynumber.portal.api`)."""

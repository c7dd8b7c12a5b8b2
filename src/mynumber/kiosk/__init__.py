"""The kiosk role (convenience-store multi-copy machine): nothing durable. The protocol's values
(:mod:`.protocol`) and the client that runs in the shop (:mod:`.client`)."""

"""The municipality (市区町村): resident register, households, events and 除票."""

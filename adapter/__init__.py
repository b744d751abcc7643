"""flexbridge: one hub, many protocols."""

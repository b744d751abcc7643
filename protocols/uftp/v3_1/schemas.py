"""Where our UFTP 3.1 schemas are (schemas/uftp/3.1/, written from the specification; the
tolerances for real peers are listed in docs/protocols/uftp-3.1.md)."""

PACKAGE = "schemas.uftp"
ENVELOPE = "3.1/signed_message.xsd"  # SignedMessage
INBOUND = "3.1/dso_inbound.xsd"  # every message a DSO receives
OUTBOUND = "3.1/dso_outbound.xsd"  # every message a DSO sends

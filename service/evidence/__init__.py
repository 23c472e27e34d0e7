"""The evidence log: signed EIP-712 entries, the RFC 9162 Merkle log, anchoring, receipts."""

"""The Confluent wire format: framing, and the Python encoder and decoder of framed Avro."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafkalake._exports import lazy_exports

if TYPE_CHECKING:
    from kafkalake.wire.decoder import DecodedMessage, Decoder
    from kafkalake.wire.encoder import FramedEncoder, encode, encode_body
    from kafkalake.wire.framing import (
        HEADER,
        HEADER_SIZE,
        MAGIC,
        DecodeError,
        DecodeReason,
        EncodeError,
        frame,
        parse_header,
    )

_EXPORTS = {
    "HEADER": "framing",
    "HEADER_SIZE": "framing",
    "MAGIC": "framing",
    "DecodeError": "framing",
    "DecodeReason": "framing",
    "EncodeError": "framing",
    "frame": "framing",
    "parse_header": "framing",
    "FramedEncoder": "encoder",
    "encode": "encoder",
    "encode_body": "encoder",
    "DecodedMessage": "decoder",
    "Decoder": "decoder",
}
__all__ = [
    "DecodeError",
    "DecodeReason",
    "DecodedMessage",
    "Decoder",
    "EncodeError",
    "FramedEncoder",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "encode",
    "encode_body",
    "frame",
    "parse_header",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

#!/usr/bin/env python3
"""Checks a published antrean draw, independently of antrean's own code: Python's standard library only.

Usage: python3 scripts/verify_draw.py DRAW.json
Exit status 0 when the draw verifies, 1 (with the reason on standard error) when it does not.

DRAW.json is what `antrean get-draw` writes (README, "Checking the draw"). This file implements the specification
in docs/draw.md from scratch: SHA-256 (hashlib), ChaCha8 and the Fisher-Yates shuffle.
"""
import hashlib
import json
import re
import struct
import sys

COMMITMENT_PREFIX = b"antrean/draw/v1/commitment\x00"
RECEIPT_PREFIX = b"antrean/draw/v1/receipt\x00"
SEED_PREFIX = b"antrean/draw/v1/seed\x00"
MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF


class Refused(Exception):
    """The draw does not verify, or the file is not a draw."""


def _rotate(value, bits):
    return ((value << bits) & MASK32) | (value >> (32 - bits))


def _quarter_round(state, a, b, c, d):
    state[a] = (state[a] + state[b]) & MASK32
    state[d] = _rotate(state[d] ^ state[a], 16)
    state[c] = (state[c] + state[d]) & MASK32
    state[b] = _rotate(state[b] ^ state[c], 12)
    state[a] = (state[a] + state[b]) & MASK32
    state[d] = _rotate(state[d] ^ state[a], 8)
    state[c] = (state[c] + state[d]) & MASK32
    state[b] = _rotate(state[b] ^ state[c], 7)


class ChaCha8:
    """The ChaCha stream cipher with 8 rounds, key = 32-byte seed, 64-bit block counter from 0, 64-bit nonce 0,
    read as a stream of little-endian 64-bit words."""

    def __init__(self, key):
        assert len(key) == 32
        self.key_words = list(struct.unpack("<8I", key))
        self.counter = 0
        self.words = []

    def _block(self):
        initial = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574] + self.key_words + [
            self.counter & MASK32, self.counter >> 32, 0, 0]
        state = list(initial)
        for _ in range(4):  # 8 rounds = 4 double rounds
            _quarter_round(state, 0, 4, 8, 12)
            _quarter_round(state, 1, 5, 9, 13)
            _quarter_round(state, 2, 6, 10, 14)
            _quarter_round(state, 3, 7, 11, 15)
            _quarter_round(state, 0, 5, 10, 15)
            _quarter_round(state, 1, 6, 11, 12)
            _quarter_round(state, 2, 7, 8, 13)
            _quarter_round(state, 3, 4, 9, 14)
        self.counter += 1
        self.words.extend((state[index] + initial[index]) & MASK32 for index in range(16))

    def next_u64(self):
        while len(self.words) < 2:
            self._block()
        low, high = self.words[0], self.words[1]
        del self.words[:2]
        return low | (high << 32)


def bounded(stream, bound):
    """A number below bound without bias: words at or above the largest multiple of bound below 2^64 are redrawn."""
    rejected = (1 << 64) % bound
    while True:
        word = stream.next_u64()
        if word <= MASK64 - rejected:
            return word % bound


def commitment(secret):
    return hashlib.sha256(COMMITMENT_PREFIX + secret).digest()


def receipt(secret, ticket_number):
    return hashlib.sha256(RECEIPT_PREFIX + secret + struct.pack("<Q", ticket_number)).digest()[:16]


def seed(secret, entries):
    data = bytearray(SEED_PREFIX + secret + struct.pack("<Q", len(entries)))
    for number, entry_receipt, joined_at_ms in entries:
        data += struct.pack("<Q", number) + entry_receipt + struct.pack("<q", joined_at_ms)
    return hashlib.sha256(bytes(data)).digest()


def draw_order(secret, entries):
    """Indexes into entries, by place: Fisher-Yates from the last place down to place 2."""
    stream = ChaCha8(seed(secret, entries))
    order = list(range(len(entries)))
    for last in range(len(order) - 1, 0, -1):
        pick = bounded(stream, last + 1)
        order[last], order[pick] = order[pick], order[last]
    return order


def ticket_number(text):
    if not isinstance(text, str) or not re.fullmatch(r"TK[0-9]{10}", text):
        raise Refused(f"ticket id {text!r} is not 'TK' followed by 10 digits")
    return int(text[2:])


def hex_bytes(text, size, field):
    if not isinstance(text, str) or not re.fullmatch(r"[0-9a-fA-F]*", text) or len(text) != 2 * size:
        raise Refused(f"{field} must be {size} bytes in hex")
    return bytes.fromhex(text)


def verify(draw):
    """Returns the number of tickets in the draw, or raises Refused."""
    if draw.get("format") != "antrean-draw":
        raise Refused("not a draw file (format is not 'antrean-draw')")
    if draw.get("algorithm_version") != 1:
        raise Refused(f"algorithm version {draw.get('algorithm_version')!r} cannot be verified (this checks 1)")
    if draw.get("drawn") is not True:
        raise Refused("the draw has not been made yet: the secret is not revealed")
    published = hex_bytes(draw.get("commitment"), 32, "commitment")
    secret = hex_bytes(draw.get("secret"), 32, "secret")
    if commitment(secret) != published:
        raise Refused("the secret does not match the commitment")
    entries = []
    for entry in draw.get("pre_open", []):
        joined_at_ms = entry.get("joined_at_ms")
        if not isinstance(joined_at_ms, int):
            raise Refused("joined_at_ms must be an integer")
        entries.append((ticket_number(entry.get("ticket_id")), hex_bytes(entry.get("receipt"), 16, "receipt"),
                        joined_at_ms))
    for index in range(1, len(entries)):
        if entries[index - 1][0] >= entries[index][0]:
            raise Refused(f"the list is not in canonical order at entry {index}")
    for number, entry_receipt, _ in entries:
        if receipt(secret, number) != entry_receipt:
            raise Refused(f"the receipt of ticket {number} does not match the secret")
    order = [ticket_number(ticket_id) for ticket_id in draw.get("order", [])]
    if len(order) != len(entries):
        raise Refused(f"the order has {len(order)} places, the list {len(entries)} tickets")
    for place, index in enumerate(draw_order(secret, entries)):
        if order[place] != entries[index][0]:
            raise Refused(f"the order does not recompute: place {place + 1} should be ticket {entries[index][0]}, "
                          f"found {order[place]}")
    return len(entries)


def main(arguments):
    if len(arguments) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with open(arguments[0], encoding="utf-8") as file:
            draw = json.load(file)
        tickets = verify(draw)
    except (OSError, ValueError, AttributeError, Refused) as error:
        print(f"{arguments[0]}: the draw does not verify: {error}", file=sys.stderr)
        return 1
    print(f"{arguments[0]}: the draw verifies: the secret matches the commitment and the order of {tickets} tickets "
          "recomputes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A software UART for Amaranth testbenches (tests/test_uart.py, tests/test_link.py).

Bit periods are given in clock cycles and may be fractional: bit ``k`` of a byte starts
at ``round(k * period)`` cycles after the start edge, which models a host whose baud rate
is off from the FPGA's divisor.
"""

from __future__ import annotations


def bits_8n1(byte: int, stop: int = 1) -> list[int]:
    """Line levels of one 8N1 character: start (0), data LSB first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def uart_send(ctx, line, data, period: float, *, stop: int = 1, gap: float = 0.0) -> None:
    """Drive ``line`` with the bytes of ``data`` (8N1), ``gap`` idle bit periods between
    characters; ``stop=0`` sends a bad (low) stop bit."""
    for byte in data:
        levels = bits_8n1(byte, stop) + [1] * (1 + int(gap))
        t = 0
        for k, level in enumerate(levels):
            ctx.set(line, level)
            n = round((k + 1) * period) - t
            t += n
            await ctx.tick().repeat(n)
        if not stop:
            ctx.set(line, 1)


async def uart_recv(ctx, line, period: float, *, timeout: int = 100_000) -> int:
    """Receive one 8N1 character from ``line``: wait (at most ``timeout`` cycles) for the
    start edge, sample every bit in its middle. Asserts a low start bit and a high stop
    bit."""
    waited = 0
    while ctx.get(line):
        await ctx.tick()
        waited += 1
        assert waited < timeout, "no start bit"
    samples = []
    t = 0
    for k in range(10):
        n = round((k + 0.5) * period) - t
        t += n
        await ctx.tick().repeat(n)
        samples.append(ctx.get(line))
    assert samples[0] == 0, "start bit glitch"
    assert samples[9] == 1, "framing error (stop bit low)"
    return sum(b << i for i, b in enumerate(samples[1:9]))


async def stream_put(ctx, st, payload) -> None:
    """Send one beat into stream ``st`` (valid/ready/payload) and wait for its transfer."""
    ctx.set(st.payload, payload)
    ctx.set(st.valid, 1)
    await ctx.tick().until(st.ready)
    ctx.set(st.valid, 0)


async def stream_get(ctx, st, *, timeout: int = 1_000_000):
    """Take one beat from stream ``st``; returns its payload."""
    ctx.set(st.ready, 1)
    n = 0
    while True:
        payload, valid = await ctx.tick().sample(st.payload, st.valid)[2:]
        if valid:
            ctx.set(st.ready, 0)
            return payload
        n += 1
        assert n < timeout, "stream timeout"

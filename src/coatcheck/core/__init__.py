"""The core: what a session is and the rules about it, with no I/O.

May import: the standard library and ``coatcheck.errors``. Nothing here reads a clock
(time is passed in), touches a network or a file, or imports another coatcheck layer;
randomness only where tokens are minted (``tokens``, ``csrf_secret``). ``policy`` holds the
decisions as tables; the engine and the edges only carry them out.
"""

"""The firmware measured on the emulated Pico itself, from its REPL (the figures `make bench`
records): the steady control loop allocates nothing on the rp2 port, with the real HAL driving
the bench, and the update's RSA signature check gives the right answer on the rp2 port's big
integers."""

from sim.boardbench import on_pico
from tests.rp2.pico import Pico


def test_the_control_loop_allocates_nothing_on_the_rp2_port(tmp_path):
    pico = Pico(tmp_path / "flash", speed="max", dev=True)   # its maintenance gives the REPL
    try:
        before = pico.inject("truth")["strokes"]
        fig = on_pico(pico.info["port"], pico.info["clinician_key"], rsa_runs=1)
        # device_loop.py ends with DONE only if no cycle raised MemoryError under heap_lock().
        assert fig["STROKES_LOCKED"] >= 60
        assert pico.inject("truth")["strokes"] - before == fig["STROKES"]
        assert 0 < fig["HEAP_FREE_RUN"] <= fig["HEAP_FREE_BOOT"] + 4096
        # issue 20's bound: at least 110 KiB free once booted, programmed and every module the
        # pump loads for a request has been loaded and let go
        assert fig["HEAP_FREE_BOOT"] >= 110 * 1024, fig["HEAP_FREE_BOOT"]
        # the periodic checks ran on the board after the loop (make bench's row)
        assert 0 < fig["CHECK_MEAN_US"] <= fig["CHECK_MAX_US"]
        # ... and the slices they owed, to the end of a whole pass of the code's hashes
        assert fig["CHECK_CODE"] == 1 and 24 <= fig["CHECKS"] < 600
        assert 0 < fig["SLICE_MEAN_US"] <= fig["SLICE_MAX_US"]
        # A real signature verifies and the same signature over a changed manifest does not.
        assert fig["RSA_OK"] == 1 and fig["RSA_VERIFY_US"] > 0
        pico.answers()
        st = pico.status()
        assert st["stopped"] is True and st["alarms"] == []
    finally:
        assert pico.close() == 0

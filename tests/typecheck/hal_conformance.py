"""Every HAL in the simulator and the tests, held by pyright to the board contract
(firmware/hal.pyi): `Hal` for a whole board the shell (firmware/app.py) runs on, `Mechanism` for
a board that only the pump's rooms drive. Never run, only type-checked (test_hal_contract.py runs
pyright on it and keeps the list whole); the RP2040 boards hold themselves to it under the rp2
stubs (boards/rp2_common.py, make typecheck)."""

from firmware.compat import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.hal import Hal, Mechanism
    from sim.engine import Hal as EngineHal
    from sim.stroke_bench import Board as StrokeBenchHal
    from sim.vboard import VirtualHal
    from tests.boards.bundle_smoke import Hal as BundleSmokeHal
    from tests.firmware.proto_bench import MemHal
    from tests.firmware.pump_harness import Hal as HarnessHal
    from tests.firmware.test_fault_state_machine import Hal as FaultHal
    from tests.firmware.test_idle_wake import IdleHal
    from tests.firmware.test_migration import Hal as MigrationHal
    from tests.firmware.test_restart_regressions import Hal as RestartHal
    from tests.firmware.test_selftest import FaultHal as SelfTestHal
    from tests.firmware.test_selftest import PostHal, StoppedDriverHal
    from tests.firmware.test_tones import Hal as TonesHal
    from tests.testboard import HealthyHal, MemBoard
    from tests.vm.alloc_check import Hal as AllocHal
    from tests.vm.continuity_check import Hal as ContinuityHal
    from tests.vm.loop_check import Hal as LoopHal

    WHOLE_BOARDS: "list[type[Hal]]" = [VirtualHal, MemBoard, MemHal, ContinuityHal, LoopHal,
                                         IdleHal]
    MECHANISMS: "list[type[Mechanism]]" = [
        EngineHal, HealthyHal, BundleSmokeHal, HarnessHal, FaultHal, MigrationHal,
        RestartHal, TonesHal, AllocHal, StrokeBenchHal, SelfTestHal, PostHal, StoppedDriverHal]

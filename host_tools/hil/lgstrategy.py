"""A labgrid Strategy for a phonelab board: off -> micropython -> deployed.

In a labgrid environment file (the module is imported by its `imports` list):

    imports:
      - host_tools.hil.lgstrategy
    images:
      micropython: ESP32_GENERIC-SPIRAM.bin          # optional: flashed on the way up
    targets:
      main:
        resources:
          RemotePlace:
            name: my-place
        drivers:
          NetworkPowerDriver: {}                      # optional
          PhonelabStrategy:
            profile: olimex-esp32-poe-iso-wrover
            image: micropython                        # optional: a key of `images`

- `off`: power off (needs a power driver).
- `micropython`: power on (or cycled), the image written with esptool when the strategy
  names one (host_tools.flash: chip and image checked against the profile), until
  MicroPython answers.
- `deployed`: the agent deployed (host_tools.deploy: mpremote, only what changed).

With `--lg-env`, the HIL plugin's `board` fixture takes the target through labgrid's
`strategy` fixture (so `--lg-initial-state` works) to `deployed` instead of flashing and
deploying itself.
"""
from __future__ import annotations

import enum
from pathlib import Path

import attr
from labgrid.factory import target_factory
from labgrid.step import step
from labgrid.strategy import Strategy, StrategyError, never_retry


class Status(enum.Enum):
    unknown = 0
    off = 1
    micropython = 2
    deployed = 3


@target_factory.reg_driver
@attr.s(eq=False)
class PhonelabStrategy(Strategy):
    bindings = {"power": {"PowerProtocol", None}}

    profile = attr.ib(default="virtual", validator=attr.validators.instance_of(str))
    image = attr.ib(default=None, validator=attr.validators.optional(
        attr.validators.instance_of(str)))
    firmware = attr.ib(default=None, validator=attr.validators.optional(
        attr.validators.instance_of(str)))
    source = attr.ib(default=False, validator=attr.validators.instance_of(bool))
    status = attr.ib(default=Status.unknown)

    def _port(self) -> str:
        from host_tools.hil.lgplace import LabgridBoard
        return LabgridBoard.from_target(self.target).serial_url

    def _image_path(self) -> Path | None:
        if self.image is None:
            return None
        env = self.target.env
        if env is None:
            raise StrategyError(f"image {self.image!r}: the target has no environment file")
        return Path(env.config.get_image_path(self.image))

    @never_retry
    @step(args=["status"])
    def transition(self, status, *, step):  # noqa: ANN001 (labgrid's signature)
        from host_tools import deploy, flash
        if not isinstance(status, Status):
            status = Status[status]
        if status == Status.unknown:
            raise StrategyError(f"can not transition to {status}")
        if status == self.status:
            step.skip("nothing to do")
            return
        if status == Status.off:
            if self.power is None:
                raise StrategyError("state off needs a power driver (PowerProtocol)")
            self.target.activate(self.power)
            self.power.off()
        elif status == Status.micropython:
            if self.power is not None:
                self.target.activate(self.power)
                self.power.cycle()
            image = self._image_path()
            if image is not None:
                flash.flash(self._port(), self.profile, image, show=False)
            flash.wait_for_micropython(self._port())
        elif status == Status.deployed:
            if self.status != Status.micropython:
                self.transition(Status.micropython)
            fw = Path(self.firmware) if self.firmware else None
            deploy.deploy(self._port(), board=self.profile, source=self.source, show=False,
                          **({"firmware": fw} if fw else {}))
        self.status = status

    @never_retry
    @step(args=["status"])
    def force(self, status, *, step):  # noqa: ANN001
        if not isinstance(status, Status):
            status = Status[status]
        if status == Status.unknown:
            raise StrategyError(f"can not force state {status}")
        self.status = status

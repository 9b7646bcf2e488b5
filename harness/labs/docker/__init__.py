"""The Docker lab: one extra Docker engine in a network namespace of this machine, listening on
TCP, that stands in for a remote engine (lab); `harness lab` and `harness cleanup`'s side of it
(commands). It has no nodes for node faults to act on (nodes)."""

from harness.labs import LabKind

LAB = LabKind(
    name="docker",
    commands="harness.labs.docker.commands:DockerLabCommands",
    nodes="harness.labs.docker.commands:NoNodes",
)

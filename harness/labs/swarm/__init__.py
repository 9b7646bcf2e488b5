"""The Swarm lab: dockerd nodes in network namespaces of this machine, formed into a swarm
(lab), and what node faults do to them (nodes)."""

from harness.labs import LabKind

LAB = LabKind(
    name="swarm",
    commands="harness.labs.swarm.commands:SwarmLabCommands",
    nodes="harness.labs.swarm.nodes:SwarmNodes",
)

"""Container engines the project brings up itself on a bare machine.

`dockerd`: the host's Docker Engine, started by `make setup` when none answers.
`podman`: a Podman API service started for one run (the `podman` target).
"""

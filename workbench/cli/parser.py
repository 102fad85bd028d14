"""THE argument parser: docker's verbs and flags, shared by the `workbench` CLI and the `%docker` magics.

`parse(argv)` returns an `argparse.Namespace` whose `command` is a canonical name
(`image_ls` for `images`, `image ls` and `image list`; `container_rm` for `rm` ...), and never exits:
bad usage raises `UsageError` (exit status 125, as docker's), `--help` raises `HelpRequested` carrying
the help text.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from workbench.errors import InvalidArgument

__all__ = ["HelpRequested", "UsageError", "build_parser", "parse"]

PROG = "workbench"


class UsageError(InvalidArgument):
    """The command line is wrong. `prog` names the (sub)command for a `--help` hint."""

    exit_code = 125

    def __init__(self, message: str, *, prog: str = PROG) -> None:
        super().__init__(message)
        self.prog = prog

    @property
    def hint(self) -> str:
        return f"See '{self.prog} --help'."


class HelpRequested(UsageError):
    """`--help` (or `--version`) was given: `text` is what to show; not a failure."""

    exit_code = 0

    def __init__(self, text: str, *, prog: str = PROG) -> None:
        super().__init__(text, prog=prog)
        self.text = text


class _HelpAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        kw.setdefault("help", "Print usage")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        raise HelpRequested(parser.format_help(), prog=parser.prog)


class _VersionAction(_HelpAction):
    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from workbench import __version__

        raise HelpRequested(f"Workbench version {__version__}\n", prog=parser.prog)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting."""

    def __init__(self, *args: Any, help_short: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", False)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.add_argument(*(("-h", "--help") if help_short else ("--help",)), action=_HelpAction)

    def error(self, message: str) -> NoReturn:
        match = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if match:
            message = f"'{match.group(1)}' is not a {self.prog} command."
        raise UsageError(message, prog=self.prog)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError((message or "").strip() or f"exit status {status}", prog=self.prog)
        raise HelpRequested(message or "", prog=self.prog)


_Sub = Any  # argparse's private _SubParsersAction


def _verb(sub: _Sub, name: str, command: str, help: str, *, aliases: Sequence[str] = (),
          help_short: bool = True) -> Parser:
    p: Parser = sub.add_parser(name, aliases=list(aliases), help=help, description=help,
                               help_short=help_short)
    p.set_defaults(command=command, prog=p.prog)
    return p


def _group(sub: _Sub, name: str, help: str, *, aliases: Sequence[str] = ()) -> _Sub:
    p: Parser = sub.add_parser(name, aliases=list(aliases), help=help, description=help)
    return p.add_subparsers(dest=f"{name}_verb", metavar="COMMAND", required=True, parser_class=Parser)


def _filters(p: Parser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], dest="filter", metavar="FILTER",
                   help="Filter output based on conditions provided (key=value)")


def _format(p: Parser, *, short: bool = False) -> None:
    flags = ("-f", "--format") if short else ("--format",)
    p.add_argument(*flags, dest="format", help="Format output using a Go-style template ({{.Field}}, {{json .}})")


def _force(p: Parser, help: str = "Do not prompt for confirmation") -> None:
    p.add_argument("-f", "--force", action="store_true", help=help)


# -- images -----------------------------------------------------------------------------------------
def _image_ls(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    _filters(p)
    _format(p)
    p.add_argument("reference", nargs="?", help="REPOSITORY[:TAG]")


def _image_verbs(sub: _Sub, prefix: bool) -> None:
    """Image verbs; `prefix` gives the `image X` spellings, else the top-level ones."""
    ls = _verb(sub, "ls" if prefix else "images", "image_ls", "List images",
               aliases=("list",) if prefix else ())
    _image_ls(ls)
    p = _verb(sub, "history", "image_history", "Show the history of an image")
    p.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True,
                   help="Print sizes and dates in human readable format")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    _format(p)
    p.add_argument("image")
    p = _verb(sub, "tag", "image_tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source")
    p.add_argument("target")
    p = _verb(sub, "rm" if prefix else "rmi", "image_rm", "Remove one or more images",
              aliases=("remove",) if prefix else ())
    _force(p, "Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = _verb(sub, "import", "image_import", "Import the contents from a tarball to create an image")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction")
    p.add_argument("-m", "--message", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("file", metavar="file|-")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p = _verb(sub, "load", "image_load", "Load an image from a tar archive or STDIN")
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    p = _verb(sub, "save", "image_save", "Save one or more images to a tar archive (streamed to STDOUT)")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = _verb(sub, "pull", "image_pull", "Download an image from a registry")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images")
    p.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    p = _verb(sub, "push", "image_push", "Upload an image to a registry")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image")
    p.add_argument("reference", metavar="NAME[:TAG]")
    _build(_verb(sub, "build", "image_build", "Build an image from a Dockerfile"))
    if prefix:
        p = _verb(sub, "inspect", "image_inspect", "Display detailed information on one or more images")
        _format(p, short=True)
        p.add_argument("images", nargs="+", metavar="IMAGE")
        p = _verb(sub, "prune", "image_prune", "Remove unused images")
        p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling")
        _force(p)
        p.add_argument("--filter", action="append", default=[], help="Provide filter values")
        p = _verb(sub, "bootstrap", "image_bootstrap",
                  "Make an image from the host's static busybox (works offline)")
        p.add_argument("flavour", choices=["busybox"], help="What to bootstrap")
        p.add_argument("--tag", "-t", default="busybox:latest", help="Name of the image")
        p.add_argument("--busybox", help="Path of the static busybox binary (default: from PATH)")


def _build(p: Parser) -> None:
    p.add_argument("-t", "--tag", action="append", default=[], help="Name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (default: PATH/Dockerfile; - for STDIN)")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--target", help="Set the target build stage to build")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output, print the ID")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer base image")
    p.add_argument("--rm", action=argparse.BooleanOptionalAction, default=True,
                   help="Remove intermediate containers after a successful build")
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    p.add_argument("--network", help="Networking mode for the RUN instructions")
    p.add_argument("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping")
    p.add_argument("--cache-from", action="append", default=[], help="Images to consider as cache sources")
    p.add_argument("--shm-size", help="Size of /dev/shm")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("context", metavar="PATH|-")


# -- containers -------------------------------------------------------------------------------------
def _create_options(p: Parser) -> None:
    """`docker create` / `docker run` options (run adds -d, --rm, --sig-proxy)."""
    a = p.add_argument
    a("--name", help="Assign a name to the container")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("-w", "--workdir", help="Working directory inside the container")
    a("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--mount", action="append", default=[], help="Attach a filesystem mount to the container")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("-m", "--memory", help="Memory limit (512m, 1g)")
    a("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--cpus", type=float, help="Number of CPUs")
    a("--cpu-shares", "-c", type=int, help="CPU shares (relative weight)")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--shm-size", help="Size of /dev/shm")
    a("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("--restart", default="no", help="Restart policy to apply when a container exits")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--network", "--net", help="Connect a container to a network")
    a("--network-alias", "--net-alias", action="append", default=[], help="Add network-scoped alias")
    a("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("-h", "--hostname", help="Container host name")
    a("--stop-signal", help="Signal to stop the container")
    a("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--init", action="store_true", default=None, help="Run an init inside the container")
    a("--platform", help="Set platform if server is multi-platform capable")
    a("--pull", choices=["always", "missing", "never"], default="missing",
      help="Pull image before running")
    a("--ulimit", action="append", default=[], help="Ulimit options (nofile=1024:2048)")
    a("--sysctl", action="append", default=[], help="Sysctl options")
    a("--device", action="append", default=[], help="Add a host device to the container")
    a("--group-add", action="append", default=[], help="Add additional groups to join")
    a("--ipc", help="IPC mode to use")
    a("--pid", help="PID namespace to use")
    a("--runtime", help="Runtime to use for this container")
    a("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    a("image")
    a("cmd", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def _container_verbs(sub: _Sub, prefix: bool) -> None:
    p = _verb(sub, "run", "container_run", "Create and run a new container from an image", help_short=False)
    p.add_argument("-d", "--detach", action="store_true", help="Run container in background, print its ID")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    p.add_argument("--sig-proxy", action=argparse.BooleanOptionalAction, default=True,
                   help="Proxy received signals to the process")
    _create_options(p)
    _create_options(_verb(sub, "create", "container_create", "Create a new container", help_short=False))
    p = _verb(sub, "ls" if prefix else "ps", "container_ls", "List containers",
              aliases=("ps", "list") if prefix else ())
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    _filters(p)
    _format(p)
    p = _verb(sub, "start", "container_start", "Start one or more stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    for name, command, help in (("stop", "container_stop", "Stop one or more running containers"),
                                ("restart", "container_restart", "Restart one or more containers")):
        p = _verb(sub, name, command, help)
        p.add_argument("-t", "--time", "--timeout", type=int, dest="time",
                       help="Seconds to wait before killing the container")
        if name == "stop":
            p.add_argument("-s", "--signal", help="Signal to send to the container")
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _verb(sub, "kill", "container_kill", "Kill one or more running containers")
    p.add_argument("-s", "--signal", help="Signal to send to the container (default KILL)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    for name, command, help in (("pause", "container_pause", "Pause all processes within containers"),
                                ("unpause", "container_unpause", "Unpause all processes within containers"),
                                ("wait", "container_wait", "Block until containers stop, print exit codes")):
        _verb(sub, name, command, help).add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _verb(sub, "rm", "container_rm", "Remove one or more containers", aliases=("remove",) if prefix else ())
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _verb(sub, "logs", "container_logs", "Fetch the logs of a container")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--since", help="Show logs since timestamp or relative (42m)")
    p.add_argument("--until", help="Show logs before a timestamp or relative (42m)")
    p.add_argument("container")
    p = _verb(sub, "rename", "container_rename", "Rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    p = _verb(sub, "top", "container_top", "Display the running processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")
    p = _verb(sub, "diff", "container_diff", "Inspect changes to files on a container's filesystem")
    p.add_argument("container")
    p = _verb(sub, "export", "container_export", "Export a container's filesystem as a tar archive")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    p.add_argument("container")
    p = _verb(sub, "cp", "container_cp", "Copy files/folders between a container and the local filesystem")
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")
    p.add_argument("source", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    p = _verb(sub, "port", "container_port", "List port mappings or a specific mapping for the container")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p = _verb(sub, "exec", "container_exec", "Execute a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p = _verb(sub, "attach", "container_attach", "Attach local standard input, output, and error streams")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("container")
    p = _verb(sub, "commit", "container_commit", "Create a new image from a container's changes")
    p.add_argument("-a", "--author", help="Author")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction")
    p.add_argument("-m", "--message", help="Commit message")
    p.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True,
                   help="Pause container during commit")
    p.add_argument("container")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    if prefix:
        p = _verb(sub, "inspect", "container_inspect", "Display detailed information on one or more containers")
        _format(p, short=True)
        p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p = _verb(sub, "prune", "container_prune", "Remove all stopped containers")
        _force(p)
        p.add_argument("--filter", action="append", default=[], help="Provide filter values")


# -- networks, volumes, system, registry, engine ------------------------------------------------------
def _network_verbs(sub: _Sub) -> None:
    p = _verb(sub, "create", "network_create", "Create a network")
    p.add_argument("-d", "--driver", default="bridge", help="Driver to manage the Network")
    p.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format")
    p.add_argument("--gateway", action="append", default=[], help="IPv4 Gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[], help="Allocate container ip from a sub-range")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--ipv6", action="store_true", help="Enable IPv6 networking")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("name")
    p = _verb(sub, "ls", "network_ls", "List networks", aliases=("list",))
    _filters(p)
    _format(p)
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p = _verb(sub, "inspect", "network_inspect", "Display detailed information on one or more networks")
    _format(p, short=True)
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p = _verb(sub, "rm", "network_rm", "Remove one or more networks", aliases=("remove",))
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p = _verb(sub, "connect", "network_connect", "Connect a container to a network")
    p.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("network")
    p.add_argument("container")
    p = _verb(sub, "disconnect", "network_disconnect", "Disconnect a container from a network")
    _force(p, "Force the container to disconnect from a network")
    p.add_argument("network")
    p.add_argument("container")
    p = _verb(sub, "prune", "network_prune", "Remove all unused networks")
    _force(p)
    p.add_argument("--filter", action="append", default=[], help="Provide filter values")


def _volume_verbs(sub: _Sub) -> None:
    p = _verb(sub, "create", "volume_create", "Create a volume")
    p.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("name", nargs="?")
    p = _verb(sub, "ls", "volume_ls", "List volumes", aliases=("list",))
    _filters(p)
    _format(p)
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    p = _verb(sub, "inspect", "volume_inspect", "Display detailed information on one or more volumes")
    _format(p, short=True)
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p = _verb(sub, "rm", "volume_rm", "Remove one or more volumes", aliases=("remove",))
    _force(p, "Force the removal of one or more volumes")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")
    p = _verb(sub, "prune", "volume_prune", "Remove all unused local volumes")
    _force(p)
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values")


def _system_verbs(sub: _Sub) -> None:
    p = _verb(sub, "df", "system_df", "Show docker disk usage")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    _format(p)
    p = _verb(sub, "info", "info", "Display system-wide information")
    _format(p, short=True)
    p = _verb(sub, "prune", "system_prune", "Remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    _force(p)
    p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    p.add_argument("--filter", action="append", default=[], help="Provide filter values")


def _registry_verbs(sub: _Sub) -> None:
    p = _verb(sub, "serve", "registry_serve", "Serve an OCI Distribution registry")
    p.add_argument("--root", required=True, help="Storage directory")
    p.add_argument("--addr", default="127.0.0.1:5000", help="HOST:PORT to listen on")
    p.add_argument("--htpasswd", help="htpasswd file (bcrypt) for basic auth")
    p.add_argument("--read-only", action="store_true", help="Refuse pushes and deletes")
    p = _verb(sub, "gc", "registry_gc", "Delete blobs no manifest references")
    p.add_argument("--root", required=True, help="Storage directory")
    p.add_argument("--dry-run", action="store_true", help="Only report what would be deleted")
    p = _verb(sub, "ls", "registry_ls", "List a registry's repositories, or the tags of one")
    p.add_argument("-n", "--limit", type=int, help="Page size (one page only)")
    p.add_argument("--last", help="List after this entry")
    p.add_argument("location", metavar="REGISTRY[/REPOSITORY]")


def _engine_verbs(sub: _Sub) -> None:
    p = _verb(sub, "start", "engine_start", "Run the engine daemon (foreground unless --detach)")
    p.add_argument("--root", default="/var/lib/workbench", help="Root of persistent state")
    p.add_argument("--host", action="append", default=[], dest="listen",
                   help="Address to listen on (unix:///PATH, tcp://HOST:PORT); repeatable")
    p.add_argument("--registry", metavar="HOST:PORT", help="Also serve a registry on this address")
    p.add_argument("--detach", "-d", action="store_true", help="Daemonise (pidfile and log file under root)")
    p = _verb(sub, "stop", "engine_stop", "Stop the engine daemon of a root")
    p.add_argument("--root", default="/var/lib/workbench", help="Root of persistent state")
    p = _verb(sub, "status", "engine_status", "Show whether the engine answers")
    p.add_argument("--root", default="/var/lib/workbench", help="Root of persistent state")


def build_parser() -> Parser:
    """The whole tree: top-level verbs plus the `image`, `container`, `network`, `volume`, `system`,
    `registry` and `engine` groups."""
    parser = Parser(prog=PROG, description="A notebook-first container engine speaking the Docker API")
    parser.add_argument("-H", "--host", help="Engine address (unix:///PATH or tcp://HOST:PORT); "
                        "default $WORKBENCH_HOST, else unix:///run/workbench/engine.sock")
    parser.add_argument("--config", help="Location of client config files (default $DOCKER_CONFIG, "
                        "else ~/.workbench)")
    parser.add_argument("-D", "--debug", action="store_true", help="Show tracebacks of errors")
    parser.add_argument("-v", "--version", action=_VersionAction, help="Print version information and quit")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True, parser_class=Parser)
    _image_verbs(sub, prefix=False)
    _container_verbs(sub, prefix=False)
    p = _verb(sub, "inspect", "inspect", "Return low-level information on objects")
    _format(p, short=True)
    p.add_argument("--type", choices=["container", "image", "network", "volume"], help="Type to inspect")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes for containers")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p = _verb(sub, "login", "login", "Log in to a registry")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    p.add_argument("server", nargs="?", help="Registry (default: Docker Hub)")
    p = _verb(sub, "logout", "logout", "Log out from a registry")
    p.add_argument("server", nargs="?", help="Registry (default: Docker Hub)")
    _format(_verb(sub, "version", "version", "Show the client and engine version information"), short=True)
    _format(_verb(sub, "info", "info", "Display system-wide information"), short=True)
    _image_verbs(_group(sub, "image", "Manage images"), prefix=True)
    _container_verbs(_group(sub, "container", "Manage containers"), prefix=True)
    _network_verbs(_group(sub, "network", "Manage networks"))
    _volume_verbs(_group(sub, "volume", "Manage volumes"))
    _system_verbs(_group(sub, "system", "Manage the engine"))
    _registry_verbs(_group(sub, "registry", "Run and browse OCI registries"))
    _engine_verbs(_group(sub, "engine", "Start, stop and check the engine daemon"))
    return parser


_PARSER: Parser | None = None


def parse(argv: Sequence[str], *, parser: Parser | None = None) -> argparse.Namespace:
    """Parse a command line (without the program name) into a Namespace with `command` set.

    Raises:
        UsageError: unknown verb or flag, a missing argument (exit status 125).
        HelpRequested: `--help`/`--version`; `.text` is the text to show.
    """
    global _PARSER
    if parser is None:
        if _PARSER is None:
            _PARSER = build_parser()
        parser = _PARSER
    args, extra = parser.parse_known_args(list(argv))
    prog = getattr(args, "prog", PROG)
    if extra:
        first = extra[0]
        raise UsageError(f"unknown flag: {first}" if first.startswith("-") else
                         f"{prog} got an unexpected argument: {first}", prog=prog)
    if not getattr(args, "command", None):
        raise UsageError("missing command", prog=PROG)
    return args


def commands() -> list[str]:
    """Every canonical command name the parser can produce."""
    found: set[str] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        if p.get_default("command"):
            found.add(p.get_default("command"))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    walk(child)

    walk(_PARSER or build_parser())
    return sorted(found)


"""The `vigil` command. Talks to the daemon over the control socket; never imports daemon/
except to run one (`vigil daemon`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from vigil import __version__
from vigil.cli import import_lvs, lb as lb_cli
from vigil.cli.agent_cmd import agent as agent_group
from vigil.errors import ConfigError, VigilError

DEFAULT_CONFIG = Path("/etc/vigil/vigil.toml")
DEFAULT_SOCKET = Path("/run/vigil/vigil.sock")
DEFAULT_STATE = Path("/var/lib/vigil")


class Ctx:
    def __init__(self, config: Path, node: str | None, socket: Path, state_dir: Path,
                 debug: bool) -> None:
        self.config, self.node, self.socket, self.state_dir, self.debug = \
            config, node, socket, state_dir, debug
        self.heartbeat_dir: Path | None = None  # ha.cf, haresources, authkeys instead
        self.allow_crc = False

    @property
    def me(self) -> str:
        return self.node or os.uname().nodename.split(".")[0]


def common(f: Any) -> Any:
    """Let every command take the global options after its name too
    (`vigil status --socket X` as well as `vigil --socket X status`)."""
    import functools

    @click.option("--config", "-c", "o_config", type=click.Path(path_type=Path, readable=False),
                  help="Cluster configuration file.")
    @click.option("--node", "o_node", help="This node's name.")
    @click.option("--socket", "o_socket", type=click.Path(path_type=Path, readable=False),
                  help="The daemon's control socket.")
    @click.option("--state-dir", "o_state", type=click.Path(path_type=Path, readable=False),
                  help="State directory.")
    @click.pass_obj
    @functools.wraps(f)
    def wrapper(c: Ctx, o_config: Path | None, o_node: str | None, o_socket: Path | None,
                o_state: Path | None, *args: Any, **kw: Any) -> Any:
        c.config = o_config or c.config
        c.node = o_node or c.node
        c.socket = o_socket or c.socket
        c.state_dir = o_state or c.state_dir
        return f(c, *args, **kw)

    return wrapper


def _fail(e: VigilError, debug: bool) -> NoReturn:
    if debug:
        import traceback
        traceback.print_exc()
    if isinstance(e, ConfigError):
        for problem in e.problems:
            click.echo(f"error: {problem}", err=True)
    else:
        click.echo(f"vigil: {e}", err=True)
    sys.exit(e.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", type=click.Path(path_type=Path, readable=False), default=DEFAULT_CONFIG,
              show_default=True, help="Cluster configuration file.")
@click.option("--node", help="This node's name (default: uname -n).")
@click.option("--socket", type=click.Path(path_type=Path, readable=False), default=DEFAULT_SOCKET,
              show_default=True, help="The daemon's control socket.")
@click.option("--state-dir", type=click.Path(path_type=Path, readable=False), default=DEFAULT_STATE,
              show_default=True, help="Where the daemon keeps its generation counter.")
@click.option("--debug", is_flag=True, help="Debug logging; tracebacks on errors.")
@click.version_option(__version__, prog_name="vigil")
@click.pass_context
def cli(ctx: click.Context, config: Path, node: str | None, socket: Path, state_dir: Path,
        debug: bool) -> None:
    """vigil: keep a floating IP and its services alive across two nodes."""
    ctx.obj = Ctx(config, node, socket, state_dir, debug)


def _load(c: Ctx) -> Any:
    """The cluster from vigil.toml, or from a Heartbeat directory (--heartbeat-dir)."""
    return _load_with_warnings(c)[0]


def _load_with_warnings(c: Ctx) -> tuple[Any, list[str]]:
    if c.heartbeat_dir is not None:
        from vigil.config.heartbeat import load_dir
        return load_dir(c.heartbeat_dir, c.allow_crc)
    from vigil.config.toml import load
    return load(c.config), []


def heartbeat_options(f: Any) -> Any:
    """--heartbeat-dir and --allow-crc: run or check a Heartbeat directory as it is."""
    import functools

    @click.option("--heartbeat-dir", type=click.Path(path_type=Path, readable=False),
                  help="Read ha.cf, haresources and authkeys from this Heartbeat directory "
                       "(e.g. /etc/ha.d) instead of the vigil configuration.")
    @click.option("--allow-crc", is_flag=True,
                  help="Accept authkeys' crc method, which gives no security at all.")
    @functools.wraps(f)
    def wrapper(c: Ctx, *args: Any, heartbeat_dir: Path | None, allow_crc: bool,
                **kw: Any) -> Any:
        c.heartbeat_dir, c.allow_crc = heartbeat_dir, allow_crc
        return f(c, *args, **kw)

    return wrapper


@cli.command("check-config")
@common
@heartbeat_options
def check_config(c: Ctx) -> None:
    """Check the configuration, the key file and the API's token file; exit non-zero on any
    problem."""
    from vigil.config.files import check_token_file
    from vigil.wire.framesize import frame_problem, serial_problem
    from vigil.config.keys import load_cluster_key
    try:
        cluster, load_warnings = _load_with_warnings(c)
        problem = frame_problem(cluster) or serial_problem(cluster)
        if problem is not None:
            raise ConfigError(problem)
        load_cluster_key(cluster)
        if cluster.api is not None and cluster.api.token_file is not None:
            check_token_file(cluster.api.token_file)  # as the daemon does before it listens
    except VigilError as e:
        _fail(e, c.debug)
    for w in load_warnings:  # what the daemon logs at every start of these files
        click.echo(f"warning: {w}", err=True)
    from vigil.model import config_warnings
    for warning in config_warnings(cluster):
        click.echo(f"warning: {warning}", err=True)
    if cluster.virtual_servers and c.me in {n.name for n in cluster.nodes}:
        _director_routes(cluster)  # on a director: can it reach its real servers?
    checked = f"{c.heartbeat_dir} (ha.cf, haresources, authkeys)" if c.heartbeat_dir else c.config
    click.echo(f"{checked}: OK: cluster {cluster.name}, nodes "
               f"{', '.join(n.name for n in cluster.nodes)}, "
               f"{len(cluster.groups)} group(s)"
               + (f", {len(cluster.virtual_servers)} virtual server(s)"
                  if cluster.virtual_servers else ""))


def _director_routes(cluster: Any) -> None:
    """What the balancer would find at a group's start here: warnings, and errors (exit 1)
    for direct-routing servers this node cannot send to."""
    import asyncio
    from vigil.balancer import wiring
    errors, warnings = asyncio.run(wiring.survey(cluster.virtual_servers))
    for w in warnings:
        click.echo(f"warning: on this director: {w}", err=True)
    for e in errors:
        click.echo(f"error: on this director: {e}", err=True)
    if errors:
        sys.exit(1)


@cli.command()
@click.option("--no-realtime", is_flag=True, help="Do not ask for real-time scheduling.")
@common
@heartbeat_options
def daemon(c: Ctx, no_realtime: bool) -> None:
    """Run this node in the foreground, logging to stderr."""
    from vigil.daemon.main import run
    try:
        cluster, warnings = _load_with_warnings(c)
        sys.exit(run(cluster, c.me, c.socket, c.state_dir, c.debug,
                     False if no_realtime else None, warnings,
                     load=lambda: _load_with_warnings(c)))
    except VigilError as e:
        _fail(e, c.debug)


@cli.group("import")
def import_group() -> None:
    """Print the vigil.toml equivalent of another cluster manager's configuration."""


@import_group.command("heartbeat")
@click.argument("directory", type=click.Path(path_type=Path, readable=False))
@click.option("--debug", is_flag=True, hidden=True)
def import_heartbeat(directory: Path, debug: bool) -> None:
    """Read DIRECTORY's ha.cf, haresources and authkeys (e.g. /etc/ha.d); print vigil.toml,
    with comments where a directive changed meaning; warnings go to stderr."""
    from vigil.config.export import import_dir
    try:
        text, warnings = import_dir(directory)
    except VigilError as e:
        _fail(e, debug)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(text, nl=False)


@import_group.command("keepalived")
@click.argument("file", type=click.Path(path_type=Path, readable=False))
@click.option("--debug", is_flag=True, hidden=True)
def import_keepalived(file: Path, debug: bool) -> None:
    """Read a keepalived.conf; print vigil.toml for its vrrp_instance blocks, with comments
    where meaning changed; what could not be carried over goes to stderr."""
    from vigil.config.keepalived import import_file
    try:
        _, text, dropped = import_file(file)
    except VigilError as e:
        _fail(e, debug)
    for d in dropped:
        click.echo(f"not carried over: {d}", err=True)
    click.echo(text, nl=False)


@cli.command()
@click.option("--listen", metavar="ADDRESS",
              help="Address to listen on (default: the [witness] address of the config).")
@common
def witness(c: Ctx, listen: str | None) -> None:
    """Run the witness of a two-node cluster (on a third host), in the foreground: while the
    nodes cannot talk, it lets at most one of them run each group."""
    from vigil.daemon.witness import run
    try:
        sys.exit(run(_load(c), listen, c.debug))
    except VigilError as e:
        _fail(e, c.debug)


def _call(c: Ctx, cmd: str, **args: Any) -> dict[str, Any]:
    from vigil.cli.client import call
    try:
        return call(c.socket, cmd, args={k: v for k, v in args.items() if v is not None})
    except VigilError as e:
        _fail(e, c.debug)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common
def status(c: Ctx, as_json: bool) -> None:
    """Nodes, links, groups and counters as this node sees them."""
    from vigil.cli.render import status_text
    s = _call(c, "status")
    click.echo(json.dumps(s, indent=2) if as_json else status_text(s))


WHICH = click.argument("which", required=False, default="all",
                       type=click.Choice(["all", "local", "foreign"]))


@cli.command()
@WHICH
@common
def standby(c: Ctx, which: str) -> None:
    """Hand the groups this node holds to the peer: all, the local ones (whose home is this
    node) or the foreign ones (Heartbeat's hb_standby)."""
    click.echo(_call(c, "standby", which=which)["message"])


@cli.command()
@WHICH
@common
def takeover(c: Ctx, which: str) -> None:
    """Take the peer's groups: all, local or foreign ones (Heartbeat's hb_takeover)."""
    click.echo(_call(c, "takeover", which=which)["message"])


@cli.command()
@common
def reload(c: Ctx) -> None:
    """Re-read the configuration and apply only what changed (also: SIGHUP). A bad or
    unsupported one is refused with its errors; the running one stays."""
    r = _call(c, "reload")
    click.echo(r["message"])
    for line in r.get("changes", []):
        click.echo(f"  {line}")


@cli.command()
@click.argument("group")
@click.argument("node", required=False, default="")
@common
def move(c: Ctx, group: str, node: str) -> None:
    """Move one group to NODE (by default: to the node that does not hold it)."""
    click.echo(_call(c, "move", group=group, to=node)["message"])


@cli.command()
@click.argument("group")
@click.argument("node", required=False, default="")
@click.option("--force", is_flag=True, help="The primary is dead and this node's data may "
              "not be promoted (lag past max_lag, no synchronous contract): promote it "
              "anyway, losing what it misses. Run on the node to promote; logged.")
@common
def switchover(c: Ctx, group: str, node: str, force: bool) -> None:
    """Hand promotable GROUP's primary to NODE (by default the other node): the primary
    stops cleanly, NODE promotes once it holds all of its WAL, the old primary follows."""
    s = _call(c, "status")
    groups = {g["name"]: g for g in s["groups"]}
    if group not in groups:
        raise click.ClickException(f"no group {group!r}; groups: {', '.join(groups)}")
    if "replicas" not in groups[group]:
        raise click.ClickException(f"group {group} is not promotable: use `vigil move`")
    if force:
        if node and node != s["node"]:
            raise click.ClickException(f"--force promotes this node ({s['node']}): run it "
                                       f"on {node}")
        click.echo(_call(c, "force_promotion", group=group)["message"])
        return
    click.echo(_call(c, "move", group=group, to=node)["message"])


@cli.group()
def resource() -> None:
    """Resource and group maintenance."""


@resource.command()
@click.argument("group", required=False)
@common
def cleanup(c: Ctx, group: str | None) -> None:
    """Clear GROUP's failures (all groups without GROUP) so that this node may run it again;
    a group whose stop failed is probed again first."""
    click.echo(_call(c, "cleanup", group=group)["message"])


@cli.group()
def fence() -> None:
    """Fencing (STONITH) of the peer."""


@fence.command()
@click.argument("node")
@common
def confirm(c: Ctx, node: str) -> None:
    """Tell this node that NODE is off (manual fencing, or after a fence agent failed); it then
    takes over NODE's groups. Say it only when NODE is really off: both would run them."""
    click.echo(_call(c, "fence_confirm", node=node)["message"])


@cli.command()
@click.argument("path", type=click.Path(path_type=Path, readable=False))
@common
def keygen(c: Ctx, path: Path) -> None:
    """Write a new random cluster key to PATH (mode 0600; never overwrites)."""
    from vigil.config.keys import generate_key, write_key
    try:
        write_key(path, generate_key(os.urandom(32)))
    except VigilError as e:
        _fail(e, c.debug)
    click.echo(f"wrote a new key to {path}; copy it to every node (mode 0600)")


@cli.command()
@click.option("--duration", default="10m", show_default=True,
              help="How long to inject faults (60s, 10m, 1h).")
@click.option("--seed", type=int, help="Replay the run with this seed.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("torture-out"),
              show_default=True, help="Where the summary, timeline and any report go.")
@click.option("--faults", default=None,
              help="The fault kinds to draw from, comma-separated (default: all; "
                   "python -m vigil.lab.torture --help lists them).")
@click.option("--unsafe-skip-release-wait", is_flag=True,
              help="Run a deliberately broken build: the checker must catch it.")
def torture(duration: str, seed: int | None, out: Path, faults: str | None,
            unsafe_skip_release_wait: bool) -> None:
    """Random faults on a test cluster in network namespaces (root), with the invariants
    (one owner, bounded outages, clean logs) checked all along; exit 1 on a violation."""
    from vigil.lab.torture import main as torture_main
    args = ["--duration", duration, "--out", str(out)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if faults is not None:
        args += ["--faults", faults]
    if unsafe_skip_release_wait:
        args.append("--unsafe-skip-release-wait")
    sys.exit(torture_main(args))


cli.add_command(agent_group)
lb_cli.register(cli, common, _call)
import_lvs.register(import_group, _fail)


def main() -> None:
    cli()

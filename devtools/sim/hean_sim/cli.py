"""`hean sim`: simulators to rehearse a configuration against, on one machine.

`hean sim exchange` serves the spot exchange simulator, speaking Binance's or
(`--protocol okx`) OKX's REST API (public market data
replayed from a recorded file, signed trading on simulated accounts, seeded
fault injection) until SIGTERM or SIGINT, then exits 0. Bad flags exit 2 with
the flag named. The one line `listening on URL` is printed last, once the
server accepts connections, so a script can wait for it. Secrets are written
to files, never printed or logged.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from hean_sim.exchange import (
    ApiKey,
    FaultPlan,
    FaultSpecError,
    KeysFileError,
    SimConfig,
    SimExchange,
    generate_key_pair,
    load_keys,
    write_credentials,
)
from hean_sim.exchange.config import PROTOCOLS, Protocol
from hean_sim.exchange.records import RecordError, check_readable
from hean_sim.exchange.times import iso_to_ms

DEFAULT_DATA = Path("../shared/data/btcusd_bitfinex_1m_2017-2018.csv.gz")
log = logging.getLogger("hean_sim")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def sim() -> None:
    """Simulators to rehearse a configuration against (no internet, no real money)."""


def _speed(value: str) -> float | None:
    if value.lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = float("nan")
    if not speed > 0 or speed == float("inf"):
        raise click.BadParameter(
            f"{value!r} is neither a positive number nor 'max'", param_hint="'--speed'"
        )
    return speed


def _balances(value: str | None) -> dict[str, Decimal] | None:
    if value is None:
        return None
    balances: dict[str, Decimal] = {}
    for item in (part.strip() for part in value.split(",")):
        asset, eq, amount = item.partition("=")
        asset = asset.strip().upper()
        problem = None
        if not eq or not asset.isalnum():
            problem = "expected ASSET=AMOUNT"
        else:
            try:
                number = Decimal(amount.strip())
            except InvalidOperation:
                problem = f"{amount.strip()!r} is not a decimal amount"
            else:
                if not number.is_finite() or number < 0:
                    problem = f"{amount.strip()!r} is not a non-negative amount"
                elif asset in balances:
                    problem = f"{asset} is given twice"
                else:
                    balances[asset] = number
        if problem is not None:
            raise click.BadParameter(f"{item!r}: {problem}", param_hint="'--balances'")
    return balances


def _start(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(iso_to_ms(value) / 1000, tz=UTC)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--start'") from None


def _fee(value: str, flag: str) -> Decimal:
    try:
        rate = Decimal(value)
    except InvalidOperation:
        rate = Decimal(-1)
    if not rate.is_finite() or not 0 <= rate < 1:
        raise click.BadParameter(f"{value!r} is not a rate in [0, 1)", param_hint=f"'{flag}'")
    return rate


@sim.command()
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="binance",
    show_default=True,
    help="Whose REST API to speak (signing, errors, ids, rate limits) over the same "
    "market, accounts and matching.",
)
@click.option(
    "--rate-limit-factor",
    type=click.IntRange(1, None),
    default=1,
    show_default=True,
    help="okx: multiply every per-endpoint request limit by this.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    required=True,
    help="Port to listen on (0: any free port; the URL line says which).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_DATA,
    show_default=True,
    help="Recorded one-minute candles or trades CSV (optionally .gz) to replay.",
)
@click.option(
    "--symbol",
    default="BTC/USDT",
    show_default=True,
    help="The market served (BASE/QUOTE), whatever pair the file recorded.",
)
@click.option(
    "--speed",
    default="1",
    show_default=True,
    help="Data seconds replayed per wall second, or 'max': step mode, one record per "
    "market-data request, as fast as the client asks.",
)
@click.option(
    "--start",
    default=None,
    help="Data time to start the replay at (ISO-8601 UTC, e.g. 2018-01-01T00:00:00Z; "
    "default: the file's first record).",
)
@click.option(
    "--balances",
    default=None,
    help="Every account's starting balances, e.g. USDT=10000,BTC=0 "
    "(default: 10000 of the quote asset).",
)
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='JSON list of {"apiKey": ..., "secret": ...} (plus "passphrase" for okx): '
    "one account per pair.",
)
@click.option(
    "--credentials-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Without --keys: where to write the generated key pair (files apiKey, secret, "
    "password (the passphrase okx needs), keys.json), usable as the engine's "
    "--credentials-dir. Default: a new private temporary directory, removed on exit.",
)
@click.option("--maker-fee", default="0.001", show_default=True, help="Maker commission rate.")
@click.option("--taker-fee", default="0.001", show_default=True, help="Taker commission rate.")
@click.option(
    "--faults",
    default="",
    help="Fault injection spec, e.g. latency=20ms~10ms,5xx=0.05,429=0.01:3,reset=0.02,"
    "timeout=0.01:2s,drop=0.05 (see docs/exchange-simulator.md).",
)
@click.option("--seed", type=int, default=None, help="Seed of the fault injection's randomness.")
def exchange(
    protocol: Protocol,
    rate_limit_factor: int,
    port: int,
    host: str,
    data: Path,
    symbol: str,
    speed: str,
    start: str | None,
    balances: str | None,
    keys_file: Path | None,
    credentials_dir: Path | None,
    maker_fee: str,
    taker_fee: str,
    faults: str,
    seed: int | None,
) -> None:
    """Serve a simulated spot exchange (Binance's or OKX's REST API) until SIGTERM/SIGINT."""
    if not data.is_file():
        hint = ""
        if data == DEFAULT_DATA:
            hint = " (the default is relative to the project root: run from there, or pass --data)"
        raise click.BadParameter(f"no such file: {data}{hint}", param_hint="'--data'")
    if keys_file is not None and credentials_dir is not None:
        raise click.BadParameter(
            "is for a generated key pair; with --keys the keys are yours",
            param_hint="'--credentials-dir'",
        )
    try:
        plan = FaultPlan.parse(faults, seed=seed)
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="'--faults'") from None
    keys: list[ApiKey]
    if keys_file is not None:
        try:
            keys = load_keys(keys_file)
        except KeysFileError as exc:
            raise click.BadParameter(str(exc), param_hint="'--keys'") from None
    else:
        keys = [generate_key_pair()]
    try:
        config = SimConfig(
            data=data,
            symbol=symbol.upper(),
            speed=_speed(speed),
            start=_start(start),
            keys=keys,
            balances=_balances(balances),
            maker_fee=_fee(maker_fee, "--maker-fee"),
            taker_fee=_fee(taker_fee, "--taker-fee"),
            protocol=protocol,
            rate_limit_factor=rate_limit_factor,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--symbol'") from None
    try:
        check_readable(data)
        simulator = SimExchange(config, plan)
    except RecordError as exc:
        raise click.BadParameter(str(exc), param_hint="'--data'") from None
    except (ValueError, OSError, EOFError) as exc:
        raise click.BadParameter(f"{data}: {exc}", param_hint="'--data'") from None
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    generated_dir: Path | None = None
    if keys_file is None:
        if credentials_dir is None:
            generated_dir = credentials_dir = Path(tempfile.mkdtemp(prefix="hean-sim-"))
        write_credentials(credentials_dir, keys[0])
    try:
        asyncio.run(_serve(simulator, host, port, keys_file, credentials_dir, faults, seed))
    finally:
        if generated_dir is not None:
            shutil.rmtree(generated_dir, ignore_errors=True)


async def _serve(
    simulator: SimExchange,
    host: str,
    port: int,
    keys_file: Path | None,
    credentials_dir: Path | None,
    faults: str,
    seed: int | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = simulator.config
    try:
        await simulator.start(host, port)
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    try:
        speed = "max (step mode)" if config.speed is None else f"{config.speed:g}x"
        name = _NAMES[config.protocol]
        _say(f"simulated {name} spot {config.symbol} replaying {config.data} at speed {speed}")
        if keys_file is not None:
            _say(f"accounts: {len(config.keys)} from {keys_file}")
        else:
            _say(f"credentials: {credentials_dir}")
        if faults:
            seeded = f" (seed {seed})" if seed is not None else ""
            _say(f"faults: {faults}{seeded}")
        _say(f"listening on {simulator.url}")
        await stop.wait()
    finally:
        log.info("stopping the exchange simulator")
        await simulator.stop()


_NAMES = {"binance": "Binance", "okx": "OKX"}


def _say(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()

"""The recordings subcommands: ``shenava worker``, ``shenava models ...``, ``shenava transcribe``,
``shenava voicemail parked|retry``.

``shenava.cli`` hooks them with::

    from recordings import cli as rec_cli
    rec_cli.add_worker_parser(sub)       # sets func=rec_cli.run_worker
    rec_cli.add_models_parser(sub)       # sets func=rec_cli.run_models
    rec_cli.add_transcribe_parser(sub)   # sets func=rec_cli.run_transcribe
    rec_cli.add_voicemail_parser(sub)    # sets func=rec_cli.run_voicemail

Each runner takes the parsed ``argparse.Namespace`` and returns an exit code:
0 success, 1 problems found (a file failed, a model is invalid), 2 bad usage or
config, 3 a model or redis-server is missing. The config is read with
``shenava.config.load_config``; its ``recordings`` section (when the lead has
wired it) gives the defaults, and flags override them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from recordings.config import LANGUAGE_RE, RecordingsConfig
from recordings.errors import ModelInvalidError, ModelMissingError
from recordings.models import add_model, check_model_folder, read_registry, resolve_models
from shenava_base.config_table import ConfigError, ConfigLoader
from shenava_base.redis_url_args import RedisUrlError, add_redis_url_arguments, redis_url_from

__all__ = [
    "add_models_parser",
    "add_transcribe_parser",
    "add_voicemail_parser",
    "add_worker_parser",
    "run_models",
    "run_transcribe",
    "run_voicemail",
    "run_worker",
]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
MAX_PROCESSES = 2 * 8
SUPERVISE_INTERVAL_S = 1.0


def _lang(value: str) -> str:
    if not LANGUAGE_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a language code such as fa or en")
    return value


def _model_arg(value: str) -> tuple[str, Path]:
    lang, sep, path = value.partition("=")
    if not sep or not LANGUAGE_RE.match(lang) or not path:
        raise argparse.ArgumentTypeError(f"expected LANG=/absolute/model/folder, got {value!r}")
    return lang, Path(path)


def _add_config(parser: argparse.ArgumentParser, load_config: ConfigLoader | None) -> None:
    """``load_config`` reads ``--config`` (the composition root passes it); without it, no ``--config``."""
    parser.add_argument("-c", "--config", type=Path, help="the Shenava TOML config file")
    parser.set_defaults(load_config=load_config)


def add_worker_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], load_config: ConfigLoader | None = None
) -> argparse.ArgumentParser:
    p = sub.add_parser("worker", help="run Vosk transcription workers for the voicemail queue")
    _add_config(p, load_config)
    p.add_argument("--processes", type=int, help="worker processes (default: recordings.workers); ~0.5 GiB each")
    p.add_argument("--model", type=_model_arg, action="append", default=[], metavar="LANG=PATH",
                   help="a model folder for a language (overrides the config); repeatable")
    add_redis_url_arguments(p)
    p.add_argument("--recordings-dir", type=Path, help="voicemail folder (default: recordings.dir)")
    p.set_defaults(func=run_worker)
    return p


def add_models_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], load_config: ConfigLoader | None = None
) -> argparse.ArgumentParser:
    p = sub.add_parser("models", help="add, check and list Vosk models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    add = msub.add_parser("add", help="unpack (a .zip) or take (a folder), check and register a model")
    add.add_argument("source", type=Path, metavar="PATH_OR_ZIP")
    add.add_argument("--lang", type=_lang, required=True, help="the model's language, e.g. fa or en")
    _add_config(add, load_config)
    add.add_argument("--models-dir", type=Path, help="where models are unpacked (default: recordings.models_dir)")
    lst = msub.add_parser("list", help="the model of each language, and whether its folder is usable")
    _add_config(lst, load_config)
    lst.add_argument("--models-dir", type=Path, help="default: recordings.models_dir")
    p.set_defaults(func=run_models)
    return p


def add_transcribe_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], load_config: ConfigLoader | None = None
) -> argparse.ArgumentParser:
    p = sub.add_parser("transcribe", help="transcribe WAV files (a backlog) with a progress bar")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--lang", type=_lang, required=True, help="the language of the files")
    p.add_argument("--model", type=Path, help="model folder (default: the config's or registry's for --lang)")
    _add_config(p, load_config)
    p.add_argument("--processes", type=int, default=1, help="decoding processes (default 1; ~0.5 GiB each)")
    p.add_argument("--output", type=Path, help="write FILE.json per file here instead of JSON lines on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run_transcribe)
    return p


def add_voicemail_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], load_config: ConfigLoader | None = None
) -> argparse.ArgumentParser:
    p = sub.add_parser("voicemail", help="list the parked voicemails (transcription given up) and queue them again")
    vsub = p.add_subparsers(dest="voicemail_command", metavar="ACTION")
    vsub.required = True
    parked = vsub.add_parser("parked", help="the voicemails whose transcription was given up, one JSON line each")
    _add_config(parked, load_config)
    add_redis_url_arguments(parked)
    retry = vsub.add_parser("retry", help="queue parked voicemails again with a fresh set of attempts")
    _add_config(retry, load_config)
    add_redis_url_arguments(retry)
    retry.add_argument("vm_ids", nargs="*", metavar="VM_ID", help="the voicemails to queue again")
    retry.add_argument("--all", action="store_true", help="every parked voicemail")
    p.set_defaults(func=run_voicemail)
    return p


# -- config -------------------------------------------------------------------


def _load(args: argparse.Namespace) -> tuple[RecordingsConfig, str, str, str]:
    """The recordings section, the Redis URL, key prefix and site (defaults without a file)."""
    config_path: Path | None = args.config
    if config_path is None:
        return RecordingsConfig(), "", "shenava", ""
    if args.load_config is None:
        print("shenava: --config is read by the shenava command", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    try:
        config = args.load_config(config_path)
    except ConfigError as exc:
        print(f"shenava: invalid config: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    recordings = getattr(config, "recordings", RecordingsConfig())
    site = getattr(getattr(config, "site", None), "id", "")
    return recordings, config.redis.url, config.redis.key_prefix, site


def _fail(message: str, code: int) -> int:
    print(f"shenava: {message}", file=sys.stderr)
    return code


# -- worker -------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> int:
    from recordings.worker import WorkerPool, WorkerSettings, check_model_paths

    recordings, redis_url, prefix, site = _load(args)
    try:
        redis_url = redis_url_from(args, redis_url, sys.stderr, "shenava worker")
    except RedisUrlError as exc:
        return _fail(f"worker: {exc}", EXIT_USAGE)
    if not redis_url:
        return _fail("worker: no Redis URL (set redis.url in the config, or give --redis-url-file "
                     "or $SHENAVA_REDIS_URL)", EXIT_USAGE)
    if args.model:
        recordings = replace(recordings, models=MappingProxyType({**recordings.models, **dict(args.model)}))
    if args.recordings_dir:
        recordings = replace(recordings, dir=args.recordings_dir.resolve())
    processes = args.processes or recordings.workers
    if not 1 <= processes <= MAX_PROCESSES:
        return _fail(f"worker: --processes must be from 1 to {MAX_PROCESSES}", EXIT_USAGE)
    try:
        models = resolve_models(recordings)
        check_model_paths(models)
    except ModelMissingError as exc:
        return _fail(f"worker: {exc}", EXIT_MISSING)
    except ModelInvalidError as exc:
        return _fail(f"worker: {exc}", EXIT_USAGE)
    if not models:
        print("shenava worker: no Vosk model configured: voicemails stay pending until one is added "
              "(shenava models add PATH --lang LANG)", file=sys.stderr)
    settings = WorkerSettings(
        redis_url=redis_url, recordings_dir=str(recordings.dir),
        models={lang: str(p) for lang, p in models.items()}, key_prefix=prefix, site=site,
        urgent_words=dict(recordings.urgent_words), urgent_min_conf=recordings.urgent_min_conf,
        max_attempts=recordings.max_attempts, claim_idle_s=recordings.claim_idle_s,
    )
    pool = WorkerPool(settings, processes)
    stopping = [False]

    def on_signal(_signum: int, _frame: object) -> None:
        stopping[0] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pool.start()
    print(f"shenava worker: {processes} process(es), languages: {', '.join(sorted(models)) or 'none'}",
          file=sys.stderr)
    while not stopping[0]:
        time.sleep(SUPERVISE_INTERVAL_S)
        if pool.alive == 0 and all(p.exitcode == EXIT_MISSING for p in pool.processes):
            pool.stop()
            return _fail("worker: every worker failed to load its models", EXIT_MISSING)
        pool.restart_dead()
    print("shenava worker: stopping (finishing the files in hand)", file=sys.stderr)
    pool.stop()
    return EXIT_OK


# -- models -------------------------------------------------------------------


def run_models(args: argparse.Namespace) -> int:
    recordings, _url, _prefix, _site = _load(args)
    models_dir = (args.models_dir or recordings.models_dir).resolve()
    if args.models_command == "add":
        try:
            folder = add_model(args.source, args.lang, models_dir)
        except ModelMissingError as exc:
            return _fail(f"models add: {exc}", EXIT_MISSING)
        except (ModelInvalidError, OSError) as exc:
            return _fail(f"models add: {exc}", EXIT_PROBLEMS)
        print(f"registered {folder} for {args.lang!r} in {models_dir}")
        if args.lang in recordings.models:
            print(f"note: recordings.models.{args.lang} in the config overrides this registration",
                  file=sys.stderr)
        print("restart `shenava worker`: voicemails waiting for this language are then transcribed",
              file=sys.stderr)
        return EXIT_OK
    registry = read_registry(models_dir)
    code = EXIT_OK
    for lang, folder in sorted({**registry, **recordings.models}.items()):
        source = "config" if lang in recordings.models else "registry"
        problems = check_model_folder(folder)
        code = EXIT_PROBLEMS if problems else code
        print(f"{lang}\t{folder}\t({source})\t{'ok' if not problems else '; '.join(problems)}")
    return code


# -- transcribe ---------------------------------------------------------------


def run_transcribe(args: argparse.Namespace) -> int:
    from recordings.batch import transcribe_files
    from recordings.progress import ProgressBar

    recordings, _url, _prefix, _site = _load(args)
    model = args.model
    if model is None:
        try:
            model = resolve_models(recordings).get(args.lang)
        except ModelInvalidError as exc:
            return _fail(f"transcribe: {exc}", EXIT_USAGE)
        if model is None:
            return _fail(f"transcribe: no Vosk model for {args.lang!r} (give --model or run "
                         "shenava models add)", EXIT_MISSING)
    model = model.resolve()
    if not model.is_dir():
        return _fail(f"transcribe: {ModelMissingError(model, args.lang)}", EXIT_MISSING)
    problems = check_model_folder(model)
    if problems:
        return _fail(f"transcribe: {model} is not a Vosk model: {'; '.join(problems)}", EXIT_PROBLEMS)
    if not 1 <= args.processes <= MAX_PROCESSES:
        return _fail(f"transcribe: --processes must be from 1 to {MAX_PROCESSES}", EXIT_USAGE)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(len(args.files), enabled=not args.no_progress)
    bar.draw()
    failed = 0
    for result in transcribe_files(args.files, model, args.lang, processes=args.processes):
        record: dict[str, object] = {"file": result.path, "ok": result.ok}
        if result.transcript is not None:
            record["transcript"] = json.loads(result.transcript.to_json())
        else:
            record["error"] = result.error
            failed += 1
        line = json.dumps(record, ensure_ascii=False)
        if args.output is not None:
            (args.output / (Path(result.path).name + ".json")).write_text(line + "\n", encoding="utf-8")
        else:
            print(line, flush=True)
        if result.error and not args.no_progress:
            sys.stderr.write(f"\r{result.error}\n")
        audio_s = result.transcript.duration_s if result.transcript else 0.0
        bar.advance(audio_s=audio_s, failed=not result.ok)
    bar.close()
    return EXIT_PROBLEMS if failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """These subcommands on their own (``python -m recordings.cli``), until ``shenava.cli`` hooks them."""
    parser = argparse.ArgumentParser(prog="shenava")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_worker_parser(sub)
    add_models_parser(sub)
    add_transcribe_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())


# -- voicemail parked | retry -------------------------------------------------------------


def run_voicemail(args: argparse.Namespace) -> int:
    """``parked``: one JSON line per parked voicemail (id, complaint, caller's number
    masked, error, attempts); ``retry``: queue them again (exit 1 if one was not parked)."""
    import asyncio

    from recordings.store import RecordingFolder, VoicemailStore
    from shenava_base.privacy import mask_number
    from shenava_base.redis_urls import async_client_from_url

    recordings, redis_url, prefix, site = _load(args)
    try:
        redis_url = redis_url_from(args, redis_url, sys.stderr, "shenava voicemail")
    except RedisUrlError as exc:
        return _fail(f"voicemail: {exc}", EXIT_USAGE)
    if not redis_url:
        return _fail("voicemail: no Redis URL (set redis.url in the config, or give --redis-url-file "
                     "or $SHENAVA_REDIS_URL)", EXIT_USAGE)
    if args.voicemail_command == "retry" and not (args.all or args.vm_ids):
        return _fail("voicemail retry: name the voicemails, or give --all", EXIT_USAGE)

    async def go() -> int:
        client = async_client_from_url(redis_url)
        try:
            store = VoicemailStore(client, RecordingFolder(recordings.dir, recordings.asterisk_dir),
                                   key_prefix=prefix, site=site)
            parked = await store.parked()
            if args.voicemail_command == "parked":
                for vm in parked:
                    print(json.dumps({
                        "vm": vm.vm_id, "complaint_ref": vm.meta.complaint_ref, "call_id": vm.meta.call_id,
                        "number": mask_number(vm.meta.caller), "attempts": vm.attempts,
                        "parked_at": vm.parked_at, "error": vm.last_error,
                    }, ensure_ascii=False))
                print(f"shenava voicemail: {len(parked)} parked", file=sys.stderr)
                return EXIT_OK
            wanted = [vm.vm_id for vm in parked] if args.all else list(args.vm_ids)
            problems = 0
            for vm_id in wanted:
                if await store.retry_parked(vm_id):
                    print(f"shenava voicemail: {vm_id} queued again", file=sys.stderr)
                else:
                    problems += 1
                    print(f"shenava voicemail: {vm_id} is not parked", file=sys.stderr)
            return EXIT_PROBLEMS if problems else EXIT_OK
        finally:
            await client.aclose()

    return asyncio.run(go())


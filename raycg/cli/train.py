"""``raycg train CONFIG``: one training run outside Ray (the same function a Ray trial calls)."""

from __future__ import annotations

import argparse


def register(groups: dict) -> None:
    top = groups["<top>"]
    p = top.add_parser(
        "train", help="train CGSchNet by force matching (+ TICA energy matching) from a YAML config",
        description="Train CGSchNet on a CG dataset: delta forces w.r.t. the priors, optional TICA free-energy "
                    "matching, AdamW with a LR schedule, early stopping, a checkpoint every epoch (resumed "
                    "exactly when rerun). The YAML holds the fields of raycg.train.TrainRunConfig: dataset, "
                    "priors (a priors JSON, 'fit' or 'none'), out, device, and the TrainConfig fields (seed, "
                    "model, optim, loss, tica, epochs, batch_size, val_fraction, ...).")
    p.add_argument("config", metavar="CONFIG", help="YAML file (TrainRunConfig)")
    p.add_argument("--out", metavar="DIR", help="override the output directory")
    p.add_argument("--device", help="override the device (cpu, cuda, cuda:1)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT has a checkpoint")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from raycg.cli.common import check_device
    from raycg.config import load_config, validate_config
    from raycg.data.validate import require_valid
    from raycg.errors import ConfigError
    from raycg.train import TrainRunConfig, train

    cfg = load_config(TrainRunConfig, args.config)
    overrides = {k: v for k, v in {"out": args.out, "device": args.device, "epochs": args.epochs}.items()
                 if v is not None}
    if overrides:
        cfg = validate_config(TrainRunConfig, {**cfg.model_dump(), **overrides}, source="command line")
    base = Path(args.config).resolve().parent

    def rel(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    check_device(cfg.device, where="--device" if args.device else f"{args.config}: device")
    ds = require_valid(rel(cfg.dataset), "full", command="train")
    out = rel(cfg.out)
    if cfg.priors == "none":
        priors = None
    elif cfg.priors == "fit":
        from raycg.priors import fit_priors

        priors = fit_priors(ds, cfg.prior_config)
        out.mkdir(parents=True, exist_ok=True)
        priors.save(out / "priors.json")
    else:
        from raycg.priors import PriorSet

        path = rel(cfg.priors)
        if not path.is_file():
            raise ConfigError(f"priors file not found: {path}", where=f"{args.config}: priors",
                              hint="give a priors JSON, 'fit' or 'none'")
        priors = PriorSet.load(path)
    tica = None
    if cfg.tica is not None and cfg.tica.path:
        from raycg.cv import ReferenceTICA

        tica = ReferenceTICA.load(rel(cfg.tica.path))
    result = train(cfg, ds, priors, tica, out, resume=cfg.resume and not args.no_resume, device=cfg.device)
    summary = {"model": str(result.model_dir), "best_epoch": result.best_epoch,
               "best_val_loss": result.best_val_loss, "epochs_run": result.epochs_run,
               "stopped_early": result.stopped_early,
               "prior_only_val_force_loss": result.prior_only_val_force_loss}
    print(json.dumps(summary, indent=2))
    return 0

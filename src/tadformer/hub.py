"""Checkpoints from a Hugging Face model repository (optional: ``pip install tadformer[hub]``).

``download_checkpoint("OWNER/NAME")`` fetches ``checkpoint_ema.pth.tar`` (else the only ``*.pth.tar``
or ``*.pth``) and the YAML config of the repo into the Hugging Face cache and returns their paths.
With ``HF_HUB_OFFLINE=1`` it uses the cache only, which is how it is tested here.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_NAME = "checkpoint_ema.pth.tar"
_PATTERNS = ["*.pth.tar", "*.pth", "*.yaml", "*.yml"]


def download_checkpoint(repo_id: str, revision: str | None = None) -> tuple[Path, Path | None]:
    """Download (or find in the cache) a repo's checkpoint and YAML config.

    Args:
        repo_id: ``OWNER/NAME`` of a Hugging Face model repository.
        revision: branch, tag or commit (default: the main branch).

    Returns:
        ``(checkpoint_path, config_path or None)``.

    Raises:
        ImportError: ``huggingface_hub`` is not installed (the message says how to install it).
        FileNotFoundError: the repo has no checkpoint, or it is not reachable and not cached.
    """
    if "/" not in repo_id:
        raise ValueError(f"--hf-repo expects OWNER/NAME, got {repo_id!r}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError("--hf-repo needs huggingface_hub: pip install 'tadformer[hub]'") from None
    try:
        folder = Path(snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=_PATTERNS))
    except Exception as exc:  # offline and not cached, unknown repo, no network...
        raise FileNotFoundError(f"could not get {repo_id} from the Hugging Face hub or its local cache "
                                f"({type(exc).__name__}: {exc})") from None
    ckpt = folder / CHECKPOINT_NAME
    if not ckpt.is_file():
        found = sorted(folder.rglob("*.pth.tar")) + sorted(folder.rglob("*.pth"))
        if len(found) != 1:
            raise FileNotFoundError(f"{repo_id} has no {CHECKPOINT_NAME} and {len(found)} other checkpoint "
                                    f"files ({[p.name for p in found]}); pass --ckpt explicitly")
        ckpt = found[0]
    configs = sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml"))
    return ckpt, (configs[0] if configs else None)

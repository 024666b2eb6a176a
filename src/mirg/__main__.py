"""``python -m mirg`` is the same CLI as ``mirg`` (so ``accelerate launch -m mirg …`` works)."""

from mirg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m shared.settings`: print `.env.example` (`> .env.example` to rewrite it)."""

from __future__ import annotations

from shared.settings.example import render


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()

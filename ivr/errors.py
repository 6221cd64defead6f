"""Errors of the IVR, one class each, with a stable code for logs and APIs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ivr.outcome import Outcome


class IVRError(Exception):
    """Base of every IVR error."""

    code = "ivr.error"


class MenuFileError(IVRError, ValueError):
    """The operator's menu file is not valid; every problem names its key path."""

    code = "ivr.menu_file_invalid"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(
            f"menu file {source} has {count} problem{'s' if count != 1 else ''}:\n{listing}"
        )


class PromptFileError(IVRError, ValueError):
    """A prompt text file is missing, unreadable or malformed."""

    code = "ivr.prompt_file_invalid"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"prompt file {source}:\n{listing}")


class PromptToolMissingError(IVRError):
    """espeak-ng or sox is not installed, so prompts cannot be rendered."""

    code = "ivr.prompt_tool_missing"

    def __init__(self, tool: str, package: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(
            f"{tool!r} was not found on PATH; install the Debian package {package!r} "
            f"(apt-get install {package}) or pass the program's path"
        )


class PromptBuildError(IVRError):
    """espeak-ng or sox ran but failed on one prompt."""

    code = "ivr.prompt_build_failed"

    def __init__(self, prompt: str, language: str, tool: str, detail: str) -> None:
        self.prompt = prompt
        self.language = language
        self.tool = tool
        super().__init__(f"{tool} failed on prompt {prompt!r} ({language}): {detail.strip()}")


class OutcomeNotDeliveredError(IVRError):
    """The outcome sink failed; the outcome rides along so the caller's data is not lost."""

    code = "ivr.outcome_not_delivered"

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        super().__init__(
            f"the IVR outcome of call {outcome.call_id} ({outcome.requested}) was not delivered"
        )

"""Making room in a pane's context window for the next prompt, as the user chooses."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from providers.base import Message, ProviderError
from workbench.engine import context
from workbench.engine.conversation import Conversation
from workbench.tui.screens.overflow import Choice, OverflowScreen
from workbench.tui.widgets.pane import Pane

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp


async def make_room(app: WorkbenchApp, pane: Pane, prompt: str) -> bool:
    """Fit the conversation into the pane's window, as the user chooses; False to skip.

    Nothing goes out that is known not to fit: where the prompt is too long even with no
    earlier turns, nothing is dropped or summarized, and where a summary leaves it too
    long, the summary is kept (the turns it replaced are gone) but the prompt is not sent.
    """
    if pane.window is None:
        return True
    app.send_step = f"fitting the conversation into {pane.display_name}'s context window"
    window, target, conversation = pane.window, pane.target, pane.conversation
    blind = bool(pane.blind_name)

    def demand(kept: Conversation) -> int:
        asked = [*kept.messages(), Message("user", prompt)]
        return context.needed(target, asked, registry=app.registry, window=window)

    need = await asyncio.to_thread(demand, conversation)
    if need <= window:
        return True
    choice: Choice = "summarize"
    # With no earlier turns, summarizing or dropping them cannot help: only what can.
    advice = "" if conversation.turns else context.too_long_advice(target, blind=blind)
    if advice or not app.settings.auto_summarize:
        overflow = OverflowScreen(pane.display_name, need, window, blind=blind, advice=advice)
        app.send_step = f"waiting for your choice for {pane.display_name}"
        choice = await app.push_screen_wait(overflow)
    if choice == "skip":
        return False
    if choice in ("drop", "summarize"):
        # What is left with every turn gone: the summary stays when turns are dropped; a
        # new one replaces it, and is at least a token long.
        carried = conversation.summary if choice == "drop" else "."
        least = await asyncio.to_thread(demand, Conversation(conversation.system, summary=carried))
        if least > window:
            await not_sent(app, pane, least, window, "even with no earlier turns")
            return False
    if choice == "drop":
        # Counted on a copy and dropped in one step: Esc meanwhile drops none.
        kept = Conversation(conversation.system, list(conversation.turns))
        kept.summary = conversation.summary
        dropped = 0
        while kept.turns and await asyncio.to_thread(demand, kept) > window:
            dropped += kept.drop_oldest()
        del conversation.turns[:dropped]
        await pane.note(f"{dropped} oldest turns dropped to fit the context window")
    elif choice == "summarize":
        turns = len(conversation.turns)
        app.send_step = f"summarizing {pane.display_name}'s earlier turns"
        try:
            summary = await app.engine.run(
                context.summarize(app.registry, target, conversation.messages())
            )
        except ProviderError as exc:
            # Its message names the model, and may give its window's size.
            hidden = f"{pane.display_name} could not summarize (why is not shown while blind)"
            app.notify(hidden if blind else exc.message, severity="error")
            return False
        conversation.summarized(summary)
        need = await asyncio.to_thread(demand, conversation)
        if need > window:  # a long prompt and the summary: kept, for a shorter prompt
            await not_sent(app, pane, need, window, f"even with {turns} earlier turns summarized")
            return False
        await pane.note(f"{turns} earlier turns summarized to fit the context window")
    return True


async def not_sent(app: WorkbenchApp, pane: Pane, need: int, window: int, even: str) -> None:
    """Say, in a toast and in the pane, that the prompt was too long to send to it."""
    blind = bool(pane.blind_name)  # a window's size, and the advice, hint at the model
    advice = context.too_long_advice(pane.target, blind=blind)
    size = f"need {need:,} tokens; the context window is {window:,}"
    size = "do not fit the context window" if blind else size
    why = (
        f"not sent: {even}, the prompt and room for its answer {size} — what helps: "
        f"{advice} (↑ brings the prompt back)"
    )
    app.notify(f"{pane.display_name}: {why}", severity="error")
    await pane.note(why)

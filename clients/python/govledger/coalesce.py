"""Submissions made concurrently on one AsyncClient, joined into batch submissions
(`AsyncClient(coalesce=True)`).

Every caller still gets its own entry's receipt, verified as any other, or its own error: the
server commits a batch atomically, so when it refuses one (a bad entry, an entry_id conflict,
an unauthorised kind, too large), nothing of it was logged and each of its entries is submitted
again on its own (with its entry_id, so nothing can be logged twice), failing or succeeding
alone. 429 and 503 are retried for the whole batch, as for a single submission.

Nothing waits to be joined: a submission goes out at once while fewer than `in_flight` requests
are in flight, and the submissions that arrive meanwhile leave together in the next request.
So a lone caller sees a single submission's latency, and under load one request carries up to
`max_entries` entries: the server checks, commits and proves them in one go, and their receipts
share one checkpoint (its signature verified once).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Dict, List, Set, Tuple

from .client import RETRY_STATUSES, ServerError

Submission = Dict[str, Any]
Receipt = Dict[str, Any]


class Coalescer:
    """Sends each submission given to `submit` alone (`post_one`) or with others (`post_many`,
    which returns their receipts in order), at most `in_flight` requests at a time."""

    def __init__(self, post_one: Callable[[Submission], Awaitable[Receipt]],
                 post_many: Callable[[List[Submission]], Awaitable[List[Receipt]]],
                 max_entries: int = 256, in_flight: int = 2):
        if max_entries < 1 or in_flight < 1:
            raise ValueError("max_entries and in_flight are at least 1")
        self.post_one = post_one
        self.post_many = post_many
        self.max_entries = max_entries
        self.in_flight = in_flight
        self._waiting: List[Tuple[Submission, "asyncio.Future[Receipt]"]] = []
        self._sending = 0
        self._tasks: Set["asyncio.Task[None]"] = set()

    async def submit(self, submission: Submission) -> Receipt:
        """Returns the entry's receipt once the request that carried it is answered. Cancelling
        the caller does not withdraw an entry already sent."""
        future: "asyncio.Future[Receipt]" = asyncio.get_running_loop().create_future()
        self._waiting.append((submission, future))
        self._pump()
        return await future

    def _pump(self) -> None:
        while self._waiting and self._sending < self.in_flight:
            group = self._waiting[:self.max_entries]
            del self._waiting[:self.max_entries]
            self._sending += 1
            task = asyncio.ensure_future(self._send(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, group: List[Tuple[Submission, "asyncio.Future[Receipt]"]]) -> None:
        try:
            if len(group) == 1:
                await self._alone(*group[0])
                return
            try:
                receipts = await self.post_many([s for s, _ in group])
            except ServerError as e:
                if e.status in RETRY_STATUSES:  # overloaded even after the retries: not one by one
                    for _, f in group:
                        _settle(f, error=e)
                else:  # refused whole, so none of it is logged: each entry on its own
                    await asyncio.gather(*(self._alone(s, f) for s, f in group))
            except BaseException as e:  # noqa: BLE001 - handed to every caller of the group
                for _, f in group:
                    _settle(f, error=e)
                raise
            else:
                for (_, f), r in zip(group, receipts):
                    _settle(f, result=r)
        finally:
            self._sending -= 1
            self._pump()

    async def _alone(self, submission: Submission, future: "asyncio.Future[Receipt]") -> None:
        try:
            receipt = await self.post_one(submission)
        except Exception as e:  # noqa: BLE001 - the caller's own error
            _settle(future, error=e)
        except BaseException as e:  # cancelled: so is the caller's wait
            _settle(future, error=e)
            raise
        else:
            _settle(future, result=receipt)


def _settle(future: "asyncio.Future[Receipt]", result: Any = None, error: Any = None) -> None:
    if future.done():  # the caller was cancelled
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

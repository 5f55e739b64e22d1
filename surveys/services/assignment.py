"""Within-subjects assignment: which article of each condition a participant reads, no
two of the same story, least exposed first (a minimum-cost flow)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence

from surveys.models import Article, Condition


def _story(article: Article) -> int:
    """A story is a real article and every version generated from its lede."""
    return article.source_article_id or article.pk


def within_assignment(
    *,
    conditions: Sequence[Condition],
    exposures: Mapping[tuple[int, int], int],
    rng: random.Random,
) -> list[tuple[Condition, Article]]:
    """Pick ``per_participant`` articles from each condition, no two of the same story,
    least-exposed first (ties at random). Returns fewer pairs than asked when no such
    pick exists.

    Solved exactly as a minimum-cost flow (source -> condition, capacity per_participant;
    condition -> story through each of its articles, cost = the article's exposure; story
    -> sink, capacity 1), because a greedy pick condition by condition can take the
    stories a later condition needs. Exposure costs dominate (see below); a random rank
    per article breaks ties, so equally exposed articles are chosen at random. Successive shortest
    paths (SPFA), one unit per path: at most a few dozen paths over a few hundred edges.
    """
    candidates = [
        (condition, article)
        for condition in conditions
        for article in condition.articles.order_by("id")
    ]
    rng.shuffle(candidates)
    need = sum(c.per_participant for c in conditions)
    # Cost of reading an article: by how much its exposure exceeds the least-exposed
    # article of its condition, r, as base**r with base > need, so that one read at r+1
    # costs more than every read of a participant at r: the assignment first keeps the
    # reads off the most-exposed articles (balance), then off the next level, and so on.
    # Exposure costs outweigh any sum of tie-breaking ranks.
    base = need + 1
    scale = len(candidates) * max(need, 1) + 1
    least = {
        condition.pk: min(
            (exposures.get((condition.pk, a.pk), 0) for _, a in candidates if _ is condition),
            default=0,
        )
        for condition in conditions
    }
    node: dict[object, int] = {"source": 0, "sink": 1}
    graph: list[list[list[int]]] = [[], []]  # edge: [to, capacity, cost, reverse index]

    def node_of(key: object) -> int:
        if key not in node:
            node[key] = len(graph)
            graph.append([])
        return node[key]

    def edge(a: int, b: int, capacity: int, cost: int) -> list[int]:
        forward = [b, capacity, cost, len(graph[b])]
        graph[a].append(forward)
        graph[b].append([a, 0, -cost, len(graph[a]) - 1])
        return forward

    for condition in conditions:
        edge(0, node_of(("condition", condition.pk)), condition.per_participant, 0)
    chosen_edges: list[tuple[list[int], Condition, Article]] = []
    for rank, (condition, article) in enumerate(candidates):
        story = node_of(("story", _story(article)))
        excess = exposures.get((condition.pk, article.pk), 0) - least[condition.pk]
        cost = base**excess * scale + rank
        chosen_edges.append(
            (edge(node_of(("condition", condition.pk)), story, 1, cost), condition, article)
        )
    for key, index in list(node.items()):
        if isinstance(key, tuple) and key[0] == "story":
            edge(index, 1, 1, 0)

    for _ in range(need):
        distance: list[float] = [float("inf")] * len(graph)
        previous: list[tuple[int, int] | None] = [None] * len(graph)
        distance[0] = 0
        queue, queued = deque([0]), [False] * len(graph)
        queued[0] = True
        while queue:
            a = queue.popleft()
            queued[a] = False
            for i, (b, capacity, cost, _) in enumerate(graph[a]):
                if capacity > 0 and distance[a] + cost < distance[b]:
                    distance[b] = distance[a] + cost
                    previous[b] = (a, i)
                    if not queued[b]:
                        queue.append(b)
                        queued[b] = True
        if previous[1] is None:
            break
        b = 1
        while b != 0:
            step = previous[b]
            assert step is not None
            a, i = step
            graph[a][i][1] -= 1
            graph[b][graph[a][i][3]][1] += 1
            b = a
    # A used condition -> story edge has no capacity left.
    return [(condition, article) for e, condition, article in chosen_edges if e[1] == 0]

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
    flow = _MinCostFlow()
    for condition in conditions:
        flow.edge("source", ("condition", condition.pk), condition.per_participant, 0)
    chosen_edges: list[tuple[list[int], Condition, Article]] = []
    stories: dict[tuple[str, int], None] = {}  # in the order first met, as the nodes are
    for rank, (condition, article) in enumerate(candidates):
        story = ("story", _story(article))
        stories[story] = None
        excess = exposures.get((condition.pk, article.pk), 0) - least[condition.pk]
        cost = base**excess * scale + rank
        used = flow.edge(("condition", condition.pk), story, 1, cost)
        chosen_edges.append((used, condition, article))
    for story in stories:
        flow.edge(story, "sink", 1, 0)
    flow.send(need)
    # A used condition -> story edge has no capacity left.
    return [(condition, article) for e, condition, article in chosen_edges if e[1] == 0]


class _MinCostFlow:
    """Successive shortest paths (SPFA), one unit per path, between the nodes "source"
    and "sink". Small on purpose: the graphs here have a few hundred edges. (networkx's
    network simplex would solve it too, but may pick another of several equally cheap
    flows, and so change which articles a seed draws in studies already running.)"""

    def __init__(self) -> None:
        self.node: dict[object, int] = {"source": 0, "sink": 1}
        self.graph: list[list[list[int]]] = [[], []]  # edge: [to, capacity, cost, reverse]

    def _index(self, key: object) -> int:
        if key not in self.node:
            self.node[key] = len(self.graph)
            self.graph.append([])
        return self.node[key]

    def edge(self, a_key: object, b_key: object, capacity: int, cost: int) -> list[int]:
        """Add an edge; returns it, its capacity (index 1) falling as flow uses it."""
        a, b = self._index(a_key), self._index(b_key)
        forward = [b, capacity, cost, len(self.graph[b])]
        self.graph[a].append(forward)
        self.graph[b].append([a, 0, -cost, len(self.graph[a]) - 1])
        return forward

    def send(self, units: int) -> None:
        """Send up to ``units`` units from source to sink, each along the cheapest path."""
        for _ in range(units):
            previous = self._cheapest_paths()
            if previous[1] is None:
                return
            b = 1
            while b != 0:
                step = previous[b]
                assert step is not None
                a, i = step
                self.graph[a][i][1] -= 1
                self.graph[b][self.graph[a][i][3]][1] += 1
                b = a

    def _cheapest_paths(self) -> list[tuple[int, int] | None]:
        """For each node, the (node, edge index) it is best reached by from the source."""
        graph = self.graph
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
        return previous

package dev.kiln;

import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Methods with four to eight arguments, compiled and dynamic. */
@Timeout(60)
class WideMethodTest {

    static final class Wide {
        long four(long a, long b, long c, long d) {
            return a + 10 * b + 100 * c + 1000 * d;
        }

        long eight(long a, long b, long c, long d, long e, long f, long g, long h) {
            return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h;
        }
    }

    @Test
    void eightArgumentsMixNodesAndConstantsInOrder() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Wide> w = kiln.actor(Wide::new);
            ActorRef<Wide> v = kiln.actor(Wide::new);
            InputNode<Long> in = Graph.input();
            Node<Long> x = v.bind(Wide::four, in, Graph.constant(1L), Graph.constant(2L), Graph.constant(3L));
            Node<Long> y = w.bind(Wide::eight, in, x, Graph.constant(1L), Graph.constant(2L), Graph.constant(3L),
                    Graph.constant(4L), Graph.constant(5L), in);
            try (CompiledGraph<Long, Long> g = kiln.compile(in, y)) {
                for (long i = 0; i < 100; i++) {
                    long four = i + 10 + 200 + 3000;
                    long expected = i + 2 * four + 3 + 8 + 15 + 24 + 35 + 8 * i;
                    assertEquals(expected, g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void eightArgumentsThroughTheDynamicPath() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Wide> w = kiln.actor(Wide::new);
            long r = kiln.call(w, Wide::eight, 1L, 1L, 1L, 1L, 1L, 1L, 1L, 2L).get(10, TimeUnit.SECONDS);
            assertEquals(1 + 2 + 3 + 4 + 5 + 6 + 7 + 16, r);
        }
    }
}

package dev.kiln.micrometer;

import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

@Timeout(60)
class KilnGraphMetricsTest {

    /** Doubles; refuses negatives. */
    static final class Doubler {
        int twice(int x) {
            if (x < 0) {
                throw new IllegalArgumentException("negative");
            }
            return 2 * x;
        }
    }

    @Test
    void theRegistryReadsTheGraphsStatistics() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Doubler> d = kiln.actor(Doubler::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, d.bind(Doubler::twice, in))) {
                SimpleMeterRegistry registry = new SimpleMeterRegistry();
                new KilnGraphMetrics(g).bindTo(registry);
                for (int i = -2; i < 8; i++) {
                    int x = i;
                    if (x < 0) {
                        assertThrows(RuntimeException.class, () -> g.execute(x).get(10, TimeUnit.SECONDS));
                    } else {
                        assertEquals(2 * x, g.execute(x).get(10, TimeUnit.SECONDS));
                    }
                }
                assertEquals(10.0, registry.get("kiln.graph.executions").functionCounter().count());
                assertEquals(2.0, registry.get("kiln.graph.failures").functionCounter().count());
                assertEquals(0.0, registry.get("kiln.graph.inflight").gauge().value());
                assertEquals(10.0, registry.get("kiln.graph.latency").functionTimer().count());
                FunctionTimer method = registry.get("kiln.actor.method.latency").tag("actor", d.name()).functionTimer();
                assertEquals(10.0, method.count());
                assertEquals(2.0, registry.get("kiln.actor.method.failures").functionCounter().count());
            }
        }
    }
}

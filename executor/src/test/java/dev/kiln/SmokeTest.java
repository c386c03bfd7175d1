package dev.kiln;

import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

@Timeout(60)
class SmokeTest {
    static final class Adder {
        int add(int x) { return x + 1; }
        int sum(int a, int b) { return a + b; }
    }

    @Test
    void chainAndFanIn() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Adder> a = kiln.actor(Adder::new);
            ActorRef<Adder> b = kiln.actor(Adder::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = a.bind(Adder::add, in);
            Node<Integer> y = b.bind(Adder::add, x);
            Node<Integer> z = a.bind(Adder::sum, x, y);
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(Graph.outputs(z, y))) {
                System.out.println(g.plan());
                System.out.println(g.toDot());
                for (int i = 0; i < 1000; i++) {
                    assertEquals(List.of(2 * i + 3, i + 2), g.execute(i).get(5, TimeUnit.SECONDS));
                }
            }
        }
    }
}

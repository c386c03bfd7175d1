package dev.kiln;

import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;

import java.util.List;

/**
 * A child JVM's main for {@link FlagsTest}: runs an in-process graph passing {@code int[]} and a {@code List} with
 * the embedded default, registering classes as a user would, and prints {@code ok} with the result.
 */
public final class InProcessRun {

    private InProcessRun() {
    }

    /** Doubles token ids. */
    public static final class Doubler {
        public int[] twice(int[] ids) {
            int[] out = ids.clone();
            for (int i = 0; i < out.length; i++) {
                out[i] *= 2;
            }
            return out;
        }

        public List<Integer> boxed(int[] ids) {
            return java.util.Arrays.stream(ids).boxed().toList();
        }
    }

    /**
     * @param args none
     * @throws Exception if the graph fails
     */
    public static void main(String[] args) throws Exception {
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().register(int[].class, Doubler.class))) {
            ActorRef<Doubler> a = kiln.actor(Doubler::new);
            ActorRef<Doubler> b = kiln.actor(Doubler::new);
            InputNode<int[]> in = Graph.input();
            try (CompiledGraph<int[], List<Integer>> g = kiln.compile(in, b.bind(Doubler::boxed, a.bind(Doubler::twice, in)))) {
                List<Integer> r = null;
                for (int i = 0; i < 1000; i++) {
                    r = g.execute(new int[] {1, 2, i}).get();
                }
                System.out.println("ok " + r);
            }
        }
    }
}

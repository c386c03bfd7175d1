package dev.kiln.examples;

import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;

import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/**
 * The README's quick start, compiled: the body of {@link #main} is the README's snippet, line for line
 * ({@code QuickStartTest} checks that they stay equal, and runs it).
 */
public final class QuickStart {

    private QuickStart() {
    }

    /** Turns text into one id per word (its length times 31 plus its first character). */
    public static final class Tokenizer {
        /** The ids of {@code text}'s words. */
        public int[] encode(String text) {
            return Arrays.stream(text.split(" ")).mapToInt(w -> w.length() * 31 + w.charAt(0)).toArray();
        }
    }

    /** A toy model: scales ids and adds a bias. */
    public static final class Model {
        private final float bias;

        /** A model that adds {@code bias} to every output. */
        public Model(float bias) {
            this.bias = bias;
        }

        /** {@code ids[i] * scale + bias} for each id. */
        public float[] forward(int[] ids, float scale) {
            float[] out = new float[ids.length];
            for (int i = 0; i < ids.length; i++) {
                out[i] = ids[i] * scale + bias;
            }
            return out;
        }
    }

    /**
     * Runs the README's quick start.
     *
     * @param args ignored
     * @throws Exception if the graph or the dynamic call fails
     */
    public static void main(String[] args) throws Exception {
        // README quick start: begin
        try (Kiln kiln = Kiln.local()) {                                   // embedded: actors are threads
            ActorRef<Tokenizer> tok = kiln.actor(Tokenizer::new);           // each actor: one method at a time
            ActorRef<Model> model = kiln.actor(() -> new Model(0));
            InputNode<String> in = Graph.input();
            Node<int[]> ids = tok.bind(Tokenizer::encode, in);              // bind, don't call
            Node<float[]> out = model.bind(Model::forward, ids, Graph.constant(0.5f));  // nodes, constants
            try (CompiledGraph<String, float[]> g = kiln.compile(in, out)) {  // typed by in and out
                System.out.println(g.plan());                               // or g.toDot() for Graphviz
                float[] y = g.execute("hello kiln").get();                  // GraphFuture: read in any order
                System.out.println(Arrays.toString(y));
            }
            CompletableFuture<int[]> r = kiln.call(tok, Tokenizer::encode, "hi");  // the dynamic path
            System.out.println(Arrays.toString(r.get()));
        }
        // README quick start: end
    }
}

package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * In one JVM, tensors Kiln allocates on the user's behalf ({@link Outputs#tensor}) are Kiln's: freed (or reused) once
 * no step of their execution can read them; a graph's result is the caller's.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class TensorOwnershipTest {

    /** The documented pattern: results built with Outputs.tensor, never closed by the user. */
    public static final class Layer {
        public Tensor fill(Integer x) {
            Tensor t = Outputs.tensor(DType.F32, 64);
            for (int i = 0; i < 64; i++) {
                t.setFloat(i, x + i);
            }
            return t;
        }

        public Tensor scale(Tensor in) {
            Tensor t = Outputs.tensor(DType.F32, in.dim(0));
            for (long i = 0; i < in.numel(); i++) {
                t.setFloat(i, 2 * in.getFloat(i));
            }
            return t;
        }

        public Tensor wasteful(Tensor in) {
            Outputs.tensor(DType.F32, 1024); // asked for and not returned: Kiln frees it at once
            return Outputs.tensor(DType.F32, 4);
        }

        public Float sum(Tensor a, Tensor b) {
            float s = 0;
            for (long i = 0; i < a.numel(); i++) {
                s += a.getFloat(i);
            }
            return s + b.getFloat(0) * 0;
        }
    }

    @Test
    void aMillionExecutionsWithTensorOutputsKeepNativeMemoryFlat() throws Exception {
        CompileOptions options = CompileOptions.defaults().maxInflight(16).idle(IdleMode.BACKOFF)
                .getTimeout(Duration.ofSeconds(60)).submitTimeout(Duration.ofSeconds(60));
        long start = Tensor.liveAllocations(); // tests before this one may have left tensors open
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Layer> a = kiln.actor(Layer::new);
            ActorRef<Layer> b = kiln.actor(Layer::new);
            InputNode<Integer> in = Graph.input();
            Node<Tensor> filled = a.bind(Layer::fill, in);
            Node<Tensor> scaled = b.bind(Layer::scale, filled);
            Node<Float> out = b.bind(Layer::sum, scaled, b.bind(Layer::wasteful, filled));
            try (CompiledGraph<Integer, Float> g = kiln.compile(in, out, options)) {
                GraphFuture<?>[] window = new GraphFuture<?>[16];
                long before = 0;
                int executions = 1_000_000;
                for (int n = 0; n < executions; n++) {
                    int k = n % window.length;
                    if (window[k] != null) {
                        window[k].get();
                    }
                    window[k] = g.execute(n);
                    if (n == 10_000) {
                        before = Tensor.liveAllocations();
                    }
                }
                float expected = 0;
                for (int i = 0; i < 64; i++) {
                    expected += 2 * (executions - 1 + i);
                }
                assertEquals(expected, (Float) window[(executions - 1) % window.length].get());
                for (GraphFuture<?> f : window) {
                    f.get();
                }
                long after = Tensor.liveAllocations();
                // Without Kiln freeing them: 3 tensors per execution, 3 million live allocations (about 1 GB).
                assertTrue(after - before <= 0, "live tensors grew from " + before + " to " + after);
                assertTrue(after > start, "Kiln holds the last executions' tensors for reuse");
            }
            assertEquals(start, Tensor.liveAllocations(), "closing the graph frees what Kiln held");
        }
    }

    @Test
    void aGraphsResultIsTheCallers() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Layer> a = kiln.actor(Layer::new);
            ActorRef<Layer> b = kiln.actor(Layer::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Tensor> g = kiln.compile(in, b.bind(Layer::scale, a.bind(Layer::fill, in)))) {
                Tensor first = g.execute(1).get();
                for (int n = 0; n < 100; n++) {
                    g.execute(n).get().close(); // the caller's to close
                }
                assertTrue(first.ownsMemory());
                assertEquals(2f, first.getFloat(0), "still readable 100 executions later");
                first.close();
            }
        }
    }
}

package dev.kiln.examples;

import dev.kiln.CompiledGraph;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

@Timeout(60)
class PipelineDemoTest {

    private static final int SIZE = 256;
    private static final int EXECUTIONS = 200;

    @Test
    void compiledAndDynamicEqualTheSequentialComputation() {
        float[][] inputs = PipelineDemo.inputs(16, SIZE, 7);
        float[][] expected = new float[inputs.length][];
        for (int k = 0; k < inputs.length; k++) {
            expected[k] = PipelineDemo.sequential(inputs[k]);
            float sum = 0;
            for (float p : expected[k]) {
                sum += p;
            }
            assertEquals(1f, sum, 1e-3f, "a softmax sums to 1");
        }
        assertNotEquals(expected[0][0], expected[1][0], "different inputs give different outputs");
        try (Kiln kiln = Kiln.local()) {
            PipelineDemo.Stages stages = PipelineDemo.Stages.create(kiln, SIZE);
            CompileOptions options = CompileOptions.defaults().maxInflight(PipelineDemo.WINDOW);
            InputNode<float[]> in = Graph.input();
            try (CompiledGraph<float[], float[]> g = kiln.compile(in, stages.bind(in), options)) {
                for (int i = 0; i < EXECUTIONS; i++) {
                    float[] out = g.execute(inputs[i % inputs.length]).get(10, TimeUnit.SECONDS);
                    assertArrayEquals(expected[i % inputs.length], out, "compiled, one at a time, execution " + i);
                }
                // Pipelined: a full window in flight, read back in order.
                List<GraphFuture<float[]>> futures = new ArrayList<>();
                for (int i = 0; i < EXECUTIONS; i++) {
                    if (futures.size() == PipelineDemo.WINDOW) {
                        int done = i - PipelineDemo.WINDOW;
                        assertArrayEquals(expected[done % inputs.length], futures.removeFirst().get(10, TimeUnit.SECONDS),
                                "compiled, pipelined, execution " + done);
                    }
                    futures.add(g.execute(inputs[i % inputs.length]));
                }
                for (int i = EXECUTIONS - futures.size(); i < EXECUTIONS; i++) {
                    assertArrayEquals(expected[i % inputs.length], futures.removeFirst().get(10, TimeUnit.SECONDS),
                            "compiled, pipelined, execution " + i);
                }
            }
            List<CompletableFuture<float[]>> dynamic = new ArrayList<>();
            for (int i = 0; i < EXECUTIONS; i++) {
                dynamic.add(stages.call(kiln, inputs[i % inputs.length]));
            }
            for (int i = 0; i < EXECUTIONS; i++) {
                assertArrayEquals(expected[i % inputs.length], dynamic.get(i).orTimeout(10, TimeUnit.SECONDS).join(),
                        "dynamic, execution " + i);
            }
        }
    }
}

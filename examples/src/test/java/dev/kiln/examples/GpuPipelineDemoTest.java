package dev.kiln.examples;

import dev.kiln.CompiledGraph;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.KilnOptions;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Transport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The GPU demo on two simulated GPUs: kernels on the actors' streams, a same-device channel and NCCL, exact results. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GpuPipelineDemoTest {

    @TempDir
    Path tmp;

    @Test
    void theKernelsGiveTheHostsResultsThroughSameDeviceAndNcclChannels() throws Exception {
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().simulatedGpus(2, 256L << 20).shmDirectory(tmp)
                .runDirectory(tmp.resolve("run")))) {
            CompileOptions options = CompileOptions.defaults().maxInflight(GpuPipelineDemo.WINDOW)
                    .bufferBytes(4L * GpuPipelineDemo.SIZE);
            InputNode<float[]> in = Graph.input();
            try (CompiledGraph<float[], float[]> g = kiln.compile(in, GpuPipelineDemo.build(kiln, in, 1), options)) {
                assertEquals(Transport.GPU_SAME_DEVICE, g.plan().channels().get(1).transport(), g.plan()::toString);
                assertEquals(Transport.NCCL, g.plan().channels().get(2).transport(), g.plan()::toString);
                ArrayDeque<GraphFuture<float[]>> inFlight = new ArrayDeque<>();
                int checked = 0;
                for (int e = 0; e < 300; e++) {
                    if (inFlight.size() == GpuPipelineDemo.WINDOW) {
                        assertArrayEquals(GpuPipelineDemo.expected(GpuPipelineDemo.input(checked)),
                                inFlight.removeFirst().get(Duration.ofSeconds(30)), "execution " + checked);
                        checked++;
                    }
                    inFlight.add(g.execute(GpuPipelineDemo.input(e)));
                }
                while (!inFlight.isEmpty()) {
                    assertArrayEquals(GpuPipelineDemo.expected(GpuPipelineDemo.input(checked)),
                            inFlight.removeFirst().get(Duration.ofSeconds(30)), "execution " + checked);
                    checked++;
                }
            }
        }
    }
}

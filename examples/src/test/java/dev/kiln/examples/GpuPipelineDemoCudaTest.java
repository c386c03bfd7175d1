package dev.kiln.examples;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.Nvrtc;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The GPU demo as a user runs it, on the real GPU: {@code GpuPipelineDemo.main} with 500 executions, whose kernels
 * are compiled with NVRTC and whose every result the demo checks against the host (it throws on a wrong one).
 * Skipped, with the reason, without CUDA or NVRTC; run by {@code gpu/verify} (tag {@code gpu}). On simulated GPUs
 * the same graph is {@link GpuPipelineDemoTest}.
 */
@Tag("gpu")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GpuPipelineDemoCudaTest {

    @Test
    void theDemoRunsOnTheGpuWithExactResults() throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
        assumeTrue(Nvrtc.isAvailable(), () -> "the demo's kernels are compiled with NVRTC: " + Nvrtc.unavailableReason());
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream out = System.out;
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            GpuPipelineDemo.main(new String[] {"500"});
        } finally {
            System.setOut(out);
            out.print(captured.toString(StandardCharsets.UTF_8));
        }
        String printed = captured.toString(StandardCharsets.UTF_8);
        assertTrue(printed.startsWith("CUDA: "), "the demo used CUDA, not simulated GPUs:\n" + printed);
        assertTrue(printed.contains("500 executions of " + GpuPipelineDemo.SIZE + " floats, every result exact"),
                printed);
    }
}

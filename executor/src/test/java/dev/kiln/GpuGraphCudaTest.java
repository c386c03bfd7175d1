package dev.kiln;

import dev.kiln.GpuActors.Producer;
import dev.kiln.GpuActors.Reader;
import dev.kiln.GpuActors.Scaler;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.IdleMode;
import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.Nvrtc;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static dev.kiln.GpuActors.GET;
import static dev.kiln.GpuActors.N;
import static dev.kiln.GpuActors.affine;
import static dev.kiln.GpuActors.made;
import static dev.kiln.GpuActors.pipelined;
import static dev.kiln.GpuActors.transport;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * GPU graphs on the real GPU (device 0 only, so it runs on a one-GPU machine): the runtime uses CUDA
 * ({@code KilnOptions} without {@code simulatedGpus}), the actors' kernels are compiled with NVRTC, and every
 * result is checked exactly. The same graphs run on simulated GPUs in {@link GpuGraphTest}. Skipped, with CUDA's
 * reason, where there is no GPU; run by {@code gpu/verify} (tag {@code gpu}).
 */
@Tag("gpu")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GpuGraphCudaTest {

    private static final CompileOptions OPTIONS = CompileOptions.defaults().maxInflight(8).bufferBytes(4L * N)
            .idle(IdleMode.BACKOFF).getTimeout(GET).submitTimeout(GET);

    @TempDir
    Path tmp;

    private final List<AutoCloseable> closing = new ArrayList<>();

    /**
     * Copies {@code made(seq)} from the host into a device buffer of its own with {@code GpuContext.copyIn}: a
     * producer that needs no kernel, so the channels are tested on the GPU even where NVRTC is missing.
     */
    public static final class Uploader {
        private DeviceTensor buffer;

        public DeviceTensor make(int seq) {
            GpuContext gpu = GpuContext.current();
            if (buffer == null) {
                buffer = gpu.allocate(DType.F32, N);
            }
            try (Tensor host = Tensor.of(made(seq))) {
                gpu.copyIn(host, buffer);
            }
            return buffer;
        }
    }

    @BeforeEach
    void needsAGpu() {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
    }

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
    }

    /** A runtime on this machine's CUDA devices; its shared-memory files stay in /dev/shm, which CUDA can pin. */
    private Kiln kiln() {
        Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(tmp.resolve("run")));
        closing.add(kiln);
        return kiln;
    }

    /** Producer -> Scaler -> Reader on GPU 0: kernels on the actors' streams, two same-device channels, exact. */
    @Test
    void kernelsOnOneGpuThroughSameDeviceChannelsGiveExactResultsOverTwoThousandPipelinedExecutions() throws Exception {
        assumeTrue(Nvrtc.isAvailable(), () -> "the actors' kernels are compiled with NVRTC: " + Nvrtc.unavailableReason());
        Kiln kiln = kiln();
        ActorRef<Producer> p = kiln.actor(Producer::new, ActorOptions.defaults().gpu(0).name("p"));
        ActorRef<Scaler> s = kiln.actor(Scaler::new, ActorOptions.defaults().gpu(0).name("s"));
        ActorRef<Reader> r = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0).name("r"));
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in, r.bind(Reader::download, s.bind(Scaler::apply,
                p.bind(Producer::make, in))), OPTIONS)) {
            ExecutionPlan plan = g.plan();
            assertEquals(Transport.GPU_SAME_DEVICE, transport(plan, 1), plan::toString);
            assertEquals(Transport.GPU_SAME_DEVICE, transport(plan, 2), plan::toString);
            pipelined(g, 2_000, OPTIONS.maxInflight(),
                    (e, out) -> assertArrayEquals(affine(made(e), 2, 1), out, "execution " + e));
        }
    }

    /** A device tensor to an actor without a GPU is staged through pinned host memory, and arrives exact. */
    @Test
    void aTensorStagedToAnActorWithoutAGpuArrivesExact() throws Exception {
        Kiln kiln = kiln();
        ActorRef<Uploader> u = kiln.actor(Uploader::new, ActorOptions.defaults().gpu(0).name("u"));
        ActorRef<Reader> h = kiln.actor(Reader::new, ActorOptions.defaults().name("h"));
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in,
                h.bind(Reader::host, Graph.hostCopy(u.bind(Uploader::make, in))),
                OPTIONS)) {
            ExecutionPlan plan = g.plan();
            assertEquals(Transport.STAGED, transport(plan, 1), plan::toString);
            assertEquals("AUTO: reader h has no GPU", plan.channels().get(1).reason(), plan::toString);
            pipelined(g, 2_000, OPTIONS.maxInflight(), (e, out) -> assertArrayEquals(made(e), out, "execution " + e));
        }
    }

    /**
     * CUDA IPC on one GPU between the driver's JVM and a child JVM, both ways: a writer in the child to a reader in
     * the driver's JVM, then a writer in the driver's JVM to a reader in the child; exact.
     */
    @Test
    void cudaIpcBetweenTheDriversJvmAndAChildJvmOnOneGpuGivesExactResults() throws Exception {
        Kiln kiln = kiln();
        ActorRef<Uploader> child = kiln.actor(Uploader::new, ActorOptions.process("gpu-child").gpu(0).name("child"));
        ActorRef<Reader> here = kiln.actor(Reader::new, ActorOptions.defaults().gpu(0).name("here"));
        InputNode<Integer> in = Graph.input();
        try (CompiledGraph<Integer, float[]> g = kiln.compile(in, here.bind(Reader::download, child.bind(Uploader::make, in)),
                OPTIONS)) {
            assertEquals(Transport.CUDA_IPC, transport(g.plan(), 1), g.plan()::toString);
            pipelined(g, 1_000, OPTIONS.maxInflight(),
                    (e, out) -> assertArrayEquals(made(e), out, "child to driver, execution " + e));
        }
        ActorRef<Uploader> driver = kiln.actor(Uploader::new, ActorOptions.defaults().gpu(0).name("driver"));
        ActorRef<Reader> there = kiln.actor(Reader::new, ActorOptions.process("gpu-child").gpu(0).name("there"));
        InputNode<Integer> in2 = Graph.input();
        try (CompiledGraph<Integer, byte[]> g = kiln.compile(in2, there.bind(Reader::downloadBytes,
                driver.bind(Uploader::make, in2)), OPTIONS)) {
            assertEquals(Transport.CUDA_IPC, transport(g.plan(), 1), g.plan()::toString);
            assertTrue(g.plan().schedules().stream().map(sc -> sc.placement().process()).distinct().count() >= 2,
                    g.plan()::toString);
            pipelined(g, 1_000, OPTIONS.maxInflight(), (e, out) -> assertArrayEquals(GpuActors.bytes(made(e)), out,
                    "driver to child, execution " + e));
        }
    }
}

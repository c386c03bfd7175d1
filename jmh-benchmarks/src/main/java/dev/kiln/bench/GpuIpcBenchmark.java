package dev.kiln.bench;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.CudaIpcChannel;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.SimulatedDeviceOps;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Bandwidth of a device tensor through {@link CudaIpcChannel} between two JVMs on GPU 0, against
 * {@code cudaMemcpyAsync} device to device in one process, in the same run. {@link Mode#Throughput}: one operation
 * moves one tensor of {@code bytes}, so bytes per second = operations per second x {@code bytes}.
 *
 * <ul>
 *   <li>{@link Way#MEMCPY_D2D}, the baseline: a copy on a stream, then the stream is synchronized;</li>
 *   <li>{@link Way#CUDA_IPC}: this JVM is the writer, a second JVM ({@link GpuIpcReader}, started as
 *       ShmTransferBenchmark starts its reader: same {@code java.home}, JVM flags and class path) the reader. One
 *       operation is one {@code offer}: the copy into the reader's slot is enqueued on the writer's copy stream, and
 *       with {@value #SLOTS} slots the writer waits (spin, then the channel's futex) whenever the reader, which
 *       synchronizes its stream on each tensor and releases it, is {@value #SLOTS} behind. So the rate is that of
 *       copies completed, with the hand-off between the JVMs overlapped by the next copy.</li>
 * </ul>
 * {@code @Setup} checks every byte of the first {@value GpuIpcReader#CHECKED} tensors in the reader JVM (each a
 * different pattern; a wrong one ends that JVM with status 1, which fails the trial) and every byte of the baseline's
 * copies. On one GPU both ends are on device 0.
 *
 * <p>Without a GPU, {@code @Setup} fails at once with CUDA's reason; {@code -Dkiln.bench.gpu=simulated} runs both
 * JVMs on one simulated machine instead ({@link GpuBench}). {@code gpu/verify} runs it.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class GpuIpcBenchmark {

    /** Tensors in flight at most: the channel's slots. */
    static final int SLOTS = 2;
    /** Polls spent spinning before a futex wait. */
    static final int SPINS = 100;
    /** A futex wait's timeout, after which the waiter checks that its peer still runs. */
    static final long FUTEX_NANOS = TimeUnit.MILLISECONDS.toNanos(10);
    /** Longest wait for the reader JVM, in setup and in one operation: well inside gpu/verify's budget for the step. */
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(20);
    /** The channel's name: its files are {@code /dev/shm/kiln-<pid>-bench-gpu-ipc.*}. */
    private static final String NAME = "bench-gpu-ipc";

    /** How one tensor moves. */
    public enum Way {
        /** The baseline: {@code cudaMemcpyAsync} device to device in this process, then the stream is synchronized. */
        MEMCPY_D2D,
        /** {@link CudaIpcChannel} to a reader in a second JVM on the same GPU. */
        CUDA_IPC
    }

    /** The tensor and the baseline's buffer, or the channel and the reader JVM. */
    @State(Scope.Benchmark)
    public static class Transfer {
        /** The tensor's size in bytes: 16 MiB, 64 MiB. */
        @Param({"16777216", "67108864"})
        public int bytes;
        /** How it moves. */
        @Param({"MEMCPY_D2D", "CUDA_IPC"})
        public Way way;

        DeviceOps ops;
        long producer;
        long receiver;
        long source;
        long destination;
        DeviceTensor tensor;
        CudaIpcChannel writer;
        Process reader;
        long sequence;

        /**
         * Opens GPU 0 and allocates the tensor; for the baseline, checks two copies byte for byte; for CUDA IPC, creates
         * the channel, starts the reader JVM and sends it the checked tensors.
         *
         * @throws IllegalStateException without a GPU (CUDA's reason), on a wrong copy, or when the reader JVM fails
         * @throws IOException           if the channel's files cannot be created or the reader JVM cannot start
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            ops = GpuBench.open("GpuIpcBenchmark");
            try {
                producer = ops.createStream(0);
                source = ops.allocate(0, bytes);
                tensor = new DeviceTensor(0, source, DType.U8, producer, bytes);
                if (way == Way.MEMCPY_D2D) {
                    receiver = ops.createStream(0);
                    destination = ops.allocate(0, bytes);
                    for (long seed = 1; seed <= 2; seed++) {
                        GpuBench.fill(ops, source, bytes, seed, producer);
                        copy(this);
                        GpuBench.check("GpuIpcBenchmark MEMCPY_D2D of " + bytes + " bytes", ops, destination, bytes, seed,
                                receiver);
                    }
                    return;
                }
                removeStale();
                writer = CudaIpcChannel.createWriter(spec(SLOTS, bytes), ShmChannel.DEFAULT_DIRECTORY, NAME,
                        new ValueCodec(), ops, 0, null, new Waker[1]);
                String machine = ops instanceof SimulatedDeviceOps sim ? sim.machineDirectory().toString() : "cuda";
                reader = GpuBench.startJvm(GpuIpcReader.class, writer.path().toString(), String.valueOf(SLOTS),
                        String.valueOf(bytes), machine);
                for (int s = 0; s < GpuIpcReader.CHECKED; s++) {
                    // ordered on the producer stream after the channel's copy of the previous sequence
                    GpuBench.fill(ops, source, bytes, s, producer);
                    offer(this);
                }
                long deadline = System.nanoTime() + WAIT_NANOS;
                while (!writer.awaitReleased(sequence - 1 + SLOTS, FUTEX_NANOS)) {
                    checkReader(this, deadline, "release the checked tensors");
                }
            } catch (IOException | RuntimeException | Error e) {
                tearDown();
                throw e;
            }
        }

        /** Closes the writer end first (the reader frees its slots only after), then ends the reader JVM; frees the rest. */
        @TearDown(Level.Trial)
        public void tearDown() {
            if (ops == null) {
                return;
            }
            try {
                if (writer != null) {
                    writer.close();
                }
            } finally {
                try {
                    if (reader != null) {
                        int status = GpuBench.stopJvm(reader);
                        if (status != 0) {
                            System.err.println("GpuIpcBenchmark: the reader JVM ended with status " + status);
                        }
                    }
                    for (long p : new long[] {destination, source}) {
                        if (p != 0) {
                            ops.free(p);
                        }
                    }
                    for (long s : new long[] {receiver, producer}) {
                        if (s != 0) {
                            ops.destroyStream(s);
                        }
                    }
                } finally {
                    ops.close();
                    ops = null;
                }
            }
        }
    }

    /** One writer, one reader on GPU 0, slots of {@code bytes}. */
    static ChannelSpec spec(int slots, long bytes) {
        return new ChannelSpec(0, 0, 0, List.of(1), slots, bytes, Transport.CUDA_IPC, "GpuIpcBenchmark");
    }

    /** Removes this benchmark's channel files left by a benchmark JVM that was killed; only those of dead processes. */
    private static void removeStale() throws IOException {
        CudaIpcChannel.removeStale(ShmChannel.DEFAULT_DIRECTORY);
        try (DirectoryStream<java.nio.file.Path> files = Files.newDirectoryStream(ShmChannel.DEFAULT_DIRECTORY,
                "kiln-*-" + NAME + ".shm")) {
            for (java.nio.file.Path file : files) {
                String name = file.getFileName().toString();
                String pid = name.substring("kiln-".length(), name.length() - NAME.length() - ".shm".length() - 1);
                if (!pid.isEmpty() && pid.chars().allMatch(Character::isDigit)
                        && !ProcessHandle.of(Long.parseLong(pid)).map(ProcessHandle::isAlive).orElse(false)) {
                    Files.deleteIfExists(file);
                }
            }
        }
    }

    /** The baseline: copies the tensor device to device on the receiving stream and waits for it. */
    private static void copy(Transfer t) {
        t.ops.copyAsync(0, t.destination, t.source, t.bytes, MemcpyKind.DEVICE_TO_DEVICE, t.receiver);
        t.ops.synchronizeStream(0, t.receiver);
    }

    /** Offers the tensor as the next sequence, waiting while the reader is {@value #SLOTS} behind. */
    private static void offer(Transfer t) {
        long sequence = t.sequence;
        int spins = 0;
        long deadline = 0;
        while (!t.writer.offer(sequence, t.tensor)) {
            if (spins < SPINS) {
                spins++;
                Thread.onSpinWait();
            } else if (!t.writer.awaitReleased(sequence, FUTEX_NANOS)) {
                if (deadline == 0) {
                    deadline = System.nanoTime() + WAIT_NANOS;
                }
                checkReader(t, deadline, "release sequence " + (sequence - SLOTS));
            }
        }
        t.sequence = sequence + 1;
    }

    private static void checkReader(Transfer t, long deadline, String what) {
        if (!t.reader.isAlive()) {
            throw new IllegalStateException("the reader JVM exited with status " + t.reader.exitValue()
                    + " before it could " + what + " (1: a tensor arrived wrong; see its output above)");
        }
        if (System.nanoTime() - deadline > 0) {
            throw new IllegalStateException("the reader JVM did not " + what + " within "
                    + TimeUnit.NANOSECONDS.toSeconds(WAIT_NANOS) + " s");
        }
    }

    /**
     * Moves one tensor: copies it and waits (baseline), or offers it to the reader JVM.
     *
     * @param t the state
     * @return the sequence or the destination, so that nothing is optimized away
     */
    @Benchmark
    public long transfer(Transfer t) {
        if (t.way == Way.MEMCPY_D2D) {
            copy(t);
            return t.destination;
        }
        offer(t);
        return t.sequence;
    }
}

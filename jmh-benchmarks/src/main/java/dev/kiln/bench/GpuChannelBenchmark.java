package dev.kiln.bench;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.SameDeviceChannel;
import dev.kiln.transport.gpu.StagedChannel;
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
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Bandwidth of a device tensor through Kiln's GPU channels of one JVM against the CUDA copies that do the same
 * work, in the same run, on GPU 0. {@link Mode#Throughput}: one operation moves one tensor of {@code bytes} and
 * waits until it has arrived on the GPU (the receiving stream is synchronized), so bytes per second = operations
 * per second x {@code bytes}. Two pairs, each a channel against its baseline:
 * <ul>
 *   <li>{@link Way#SAME_DEVICE} against {@link Way#MEMCPY_D2D}: the same-device channel copies device to device
 *       once, plus its events; target at 64 MiB: at least 95 % of the baseline;</li>
 *   <li>{@link Way#STAGED} against {@link Way#MEMCPY_D2H_H2D}: the staged channel copies device to host into its
 *       pinned shared-memory slot, waits, then host to device into the reader's buffer; the baseline is the same
 *       pair of copies through a pinned host buffer, each waited for. Target: at least 80 % of the baseline.</li>
 * </ul>
 * {@code way} is the last parameter, so JMH runs the four ways of one size one after another. {@code @Setup} moves
 * two different patterns and checks every byte that arrived, so a way that measures a copy that does not happen
 * fails. One slot, one reader; the tensor lives on a producer stream of its own, as an actor's would.
 *
 * <p>Without a GPU, {@code @Setup} fails at once with CUDA's reason; {@code -Dkiln.bench.gpu=simulated} runs it on a
 * simulated GPU instead ({@link GpuBench}), which checks the logic, not the speed. {@code gpu/verify} runs it.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class GpuChannelBenchmark {

    /** How one tensor moves. */
    public enum Way {
        /** Baseline of {@link #SAME_DEVICE}: {@code cudaMemcpyAsync} device to device on a stream, then the stream is synchronized. */
        MEMCPY_D2D,
        /** {@link SameDeviceChannel}: offer, poll, synchronize the reader's stream, release. */
        SAME_DEVICE,
        /**
         * Baseline of {@link #STAGED}: {@code cudaMemcpyAsync} device to a pinned host buffer, synchronized, then host
         * to device, synchronized: the two copies a staged tensor needs.
         */
        MEMCPY_D2H_H2D,
        /** {@link StagedChannel} to a reader on the same GPU: offer (device to host, waited for), poll (host to device), synchronize, release. */
        STAGED
    }

    /** The tensor, the streams, and the channel or the baseline's buffers of one way. */
    @State(Scope.Benchmark)
    public static class Transfer {
        /** The tensor's size in bytes: 1 MiB, 16 MiB, 64 MiB. */
        @Param({"1048576", "16777216", "67108864"})
        public int bytes;
        /** How it moves. */
        @Param({"MEMCPY_D2D", "SAME_DEVICE", "MEMCPY_D2H_H2D", "STAGED"})
        public Way way;

        DeviceOps ops;
        long producer;
        long receiver;
        long source;
        long destination;
        Arena arena;
        MemorySegment pinned;
        DeviceTensor tensor;
        Channel writer;
        Channel reader;
        long sequence;

        /**
         * Opens GPU 0, allocates and fills the tensor, makes the channel or the baseline's buffers, and checks that two
         * different patterns arrive byte for byte.
         *
         * @throws IllegalStateException without a GPU (CUDA's reason), or when a pattern does not arrive
         * @throws IOException           if the staged channel's file cannot be created
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            ops = GpuBench.open("GpuChannelBenchmark");
            try {
                producer = ops.createStream(0);
                receiver = ops.createStream(0);
                source = ops.allocate(0, bytes);
                tensor = new DeviceTensor(0, source, DType.U8, producer, bytes);
                ChannelSpec spec = new ChannelSpec(0, 0, 0, List.of(1), 1, bytes,
                        way == Way.STAGED ? Transport.STAGED : Transport.GPU_SAME_DEVICE, "GpuChannelBenchmark");
                switch (way) {
                    case MEMCPY_D2D -> destination = ops.allocate(0, bytes);
                    case SAME_DEVICE -> {
                        SameDeviceChannel ch = new SameDeviceChannel(spec, ops, 0, new long[] {receiver}, new Waker(),
                                new Waker[] {new Waker()});
                        writer = ch;
                        reader = ch;
                    }
                    case MEMCPY_D2H_H2D -> {
                        destination = ops.allocate(0, bytes);
                        arena = Arena.ofShared();
                        pinned = arena.allocate(bytes, 4096);
                        ops.pinHost(pinned);
                    }
                    case STAGED -> {
                        long free = Files.getFileStore(ShmChannel.DEFAULT_DIRECTORY).getUsableSpace();
                        if (free < 2L * bytes) {
                            throw new IllegalStateException("GpuChannelBenchmark STAGED: " + ShmChannel.DEFAULT_DIRECTORY
                                    + " has " + free + " bytes free, too few for a staged slot of " + bytes + " bytes");
                        }
                        StagedChannel w = StagedChannel.createWriter(spec, ShmChannel.DEFAULT_DIRECTORY,
                                "bench-gpu-staged", new ValueCodec(), ops, 0, null, new Waker[1]);
                        writer = w;
                        reader = StagedChannel.openReader(spec, w.path(), new ValueCodec(), ops, 0, 0, receiver, null);
                    }
                }
                for (long seed = 1; seed <= 2; seed++) {
                    GpuBench.fill(ops, source, bytes, seed, producer);
                    long arrived = move();
                    GpuBench.check("GpuChannelBenchmark " + way + " of " + bytes + " bytes", ops, arrived, bytes, seed,
                            receiver);
                }
            } catch (IOException | RuntimeException | Error e) {
                tearDown();
                throw e;
            }
        }

        /** @return the device address the tensor arrived at */
        long move() {
            switch (way) {
                case MEMCPY_D2D -> {
                    ops.copyAsync(0, destination, source, bytes, MemcpyKind.DEVICE_TO_DEVICE, receiver);
                    ops.synchronizeStream(0, receiver);
                    return destination;
                }
                case MEMCPY_D2H_H2D -> {
                    ops.copyAsync(0, pinned.address(), source, bytes, MemcpyKind.DEVICE_TO_HOST, producer);
                    ops.synchronizeStream(0, producer);
                    ops.copyAsync(0, destination, pinned.address(), bytes, MemcpyKind.HOST_TO_DEVICE, receiver);
                    ops.synchronizeStream(0, receiver);
                    return destination;
                }
                default -> {
                    long seq = sequence++;
                    if (!writer.offer(seq, tensor)) {
                        throw new IllegalStateException(way + ": the only slot is not free at sequence " + seq);
                    }
                    DeviceTensor view = (DeviceTensor) reader.poll(0, seq);
                    ops.synchronizeStream(0, view.stream());
                    reader.release(0, seq);
                    return view.pointer();
                }
            }
        }

        /** Closes the channel and frees everything; safe after a failed setup. */
        @TearDown(Level.Trial)
        public void tearDown() {
            if (ops == null) {
                return;
            }
            try {
                if (reader != null && reader != writer) {
                    reader.close();
                }
                if (writer != null) {
                    writer.close();
                }
                if (pinned != null) {
                    ops.unpinHost(pinned);
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
                if (arena != null) {
                    arena.close();
                }
                ops.close();
                ops = null;
            }
        }
    }

    /**
     * Moves one tensor and waits for it on the GPU.
     *
     * @param t the state
     * @return the address it arrived at, so that nothing is optimized away
     */
    @Benchmark
    public long transfer(Transfer t) {
        return t.move();
    }
}

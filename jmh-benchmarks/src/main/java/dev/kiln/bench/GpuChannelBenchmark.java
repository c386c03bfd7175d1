package dev.kiln.bench;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.CudaRuntime;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.CudaDeviceOps;
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
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Bandwidth of a device tensor through the GPU channels against {@code cudaMemcpyAsync} device to device of
 * the same bytes, in the same run: {@link Way#MEMCPY_D2D} is the baseline, {@link Way#SAME_DEVICE} the
 * same-device channel (target: at least 80 % of the baseline, DESIGN.md), {@link Way#STAGED} the CPU staging
 * path to a GPU reader (device to host, then host to device), to show what staging costs against the direct
 * path. {@link Mode#Throughput}: one operation moves one tensor of {@code bytes} and waits until the copy is
 * done on the GPU (the reader's stream is synchronized), so bytes per second = operations per second x
 * {@code bytes}. One slot, one reader, on GPU 0.
 *
 * <p>Needs a GPU: without one, {@code @Setup} fails at once with CUDA's reason, and JMH reports the error.
 * <b>Never run yet</b>: written on machines without a GPU.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class GpuChannelBenchmark {

    /** How one tensor moves. */
    public enum Way {
        /** The baseline: {@code cudaMemcpyAsync} device to device on a stream, then the stream is synchronized. */
        MEMCPY_D2D,
        /** {@link SameDeviceChannel}: offer, poll, synchronize the reader's stream, release. */
        SAME_DEVICE,
        /** {@link StagedChannel} to a reader on the same GPU: offer (D2H, waited for), poll (H2D), synchronize, release. */
        STAGED
    }

    /** The tensor, the channel and the streams of one way. */
    @State(Scope.Benchmark)
    public static class Transfer {
        /** The tensor's size in bytes: 1 MiB, 16 MiB, 64 MiB. */
        @Param({"1048576", "16777216", "67108864"})
        public int bytes;
        /** How it moves. */
        @Param({"MEMCPY_D2D", "SAME_DEVICE", "STAGED"})
        public Way way;

        long source;
        long destination;
        long stream;
        DeviceTensor tensor;
        Channel writer;
        Channel reader;
        long sequence;

        /**
         * Checks for a GPU, allocates the tensor and the channel, and moves a few tensors.
         *
         * @throws IllegalStateException without a GPU, with CUDA's reason
         * @throws IOException           if the staged channel's file cannot be created
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            if (!Cuda.isAvailable()) {
                throw new IllegalStateException("GpuChannelBenchmark needs a GPU: " + Cuda.unavailableReason());
            }
            Cuda.setDevice(0);
            CudaDeviceOps ops = new CudaDeviceOps();
            source = Cuda.malloc(bytes);
            Cuda.memset(source, 7, bytes);
            stream = Cuda.streamCreate(CudaRuntime.cudaStreamNonBlocking);
            tensor = new DeviceTensor(0, source, DType.U8, 0, bytes);
            Transport transport = way == Way.STAGED ? Transport.STAGED : Transport.GPU_SAME_DEVICE;
            ChannelSpec spec = new ChannelSpec(1, 1, 0, List.of(1), 1, bytes, transport, "benchmark");
            switch (way) {
                case MEMCPY_D2D -> destination = Cuda.malloc(bytes);
                case SAME_DEVICE -> {
                    SameDeviceChannel ch = new SameDeviceChannel(spec, ops, 0, new long[] {stream}, new Waker(),
                            new Waker[] {new Waker()});
                    writer = ch;
                    reader = ch;
                }
                case STAGED -> {
                    StagedChannel w = StagedChannel.createWriter(spec, ShmChannel.DEFAULT_DIRECTORY, "bench-gpu-staged",
                            new ValueCodec(), ops, 0, null, new Waker[1]);
                    writer = w;
                    reader = StagedChannel.openReader(spec, w.path(), new ValueCodec(), ops, 0, 0, stream, null);
                }
            }
            for (int i = 0; i < 5; i++) {
                move();
            }
        }

        long move() {
            if (way == Way.MEMCPY_D2D) {
                Cuda.memcpyAsync(destination, source, bytes, MemcpyKind.DEVICE_TO_DEVICE, stream);
                Cuda.streamSynchronize(stream);
                return destination;
            }
            long seq = sequence++;
            if (!writer.offer(seq, tensor)) {
                throw new IllegalStateException("slot not free at sequence " + seq);
            }
            DeviceTensor v = (DeviceTensor) reader.poll(0, seq);
            Cuda.streamSynchronize(stream);
            reader.release(0, seq);
            return v.pointer();
        }

        /** Frees everything. */
        @TearDown(Level.Trial)
        public void tearDown() {
            if (reader != null && reader != writer) {
                reader.close();
            }
            if (writer != null) {
                writer.close();
            }
            if (destination != 0) {
                Cuda.free(destination);
            }
            if (stream != 0) {
                Cuda.streamDestroy(stream);
            }
            if (source != 0) {
                Cuda.free(source);
            }
        }
    }

    /**
     * Moves one tensor and waits for it on the GPU.
     *
     * @param t the state
     * @return the destination address, so that nothing is optimized away
     */
    @Benchmark
    public long transfer(Transfer t) {
        return t.move();
    }
}

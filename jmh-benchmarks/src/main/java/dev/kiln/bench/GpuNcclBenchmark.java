package dev.kiln.bench;

import dev.kiln.cuda.Cuda;
import dev.kiln.nccl.Nccl;
import dev.kiln.nccl.NcclDataType;
import dev.kiln.nccl.NcclRedOp;
import dev.kiln.tensor.DType;
import dev.kiln.transport.gpu.Communicator;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.NcclCommunicator;
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

import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * A one-rank NCCL communicator on GPU 0 through Kiln's {@link NcclCommunicator} against the raw
 * {@code dev.kiln.nccl.Nccl} calls of the same operation, in the same run: Kiln's wrapper overhead.
 * {@link Mode#Throughput}: one operation is one collective or one grouped exchange of {@code bytes}, waited for
 * on the host (the stream is synchronized).
 *
 * <ul>
 *   <li>{@link Op#ALL_REDUCE}: a sum of {@code bytes / 4} floats, out of place;</li>
 *   <li>{@link Op#SEND_RECV}: a group of one send to itself and one receive from itself, {@code bytes} bytes.</li>
 * </ul>
 * {@link Way#KILN} joins with {@code DeviceOps.joinCommunicator} (a non-blocking {@code ncclCommInitRankConfig},
 * awaited), and each call goes through the wrapper: its read lock, then a poll of {@code ncclCommGetAsyncError}
 * until issued, then a check for an error. {@link Way#RAW}, the baseline, is a blocking communicator
 * ({@code ncclCommInitRank}) and the bare calls, as an application that calls NCCL directly writes them; so the ratio
 * includes what Kiln's choice of a non-blocking communicator costs. {@code @Setup} checks every byte of two results
 * (one rank: the sum, and the exchange, are the input).
 *
 * <p>Without a GPU and NCCL, {@code @Setup} fails at once with the reason. With {@code -Dkiln.bench.gpu=simulated},
 * {@link Way#KILN} runs on a simulated GPU ({@code SimulatedCommunicator}, NCCL's rules over loopback TCP) and
 * {@link Way#RAW} fails with the reason, as there is no NCCL to call: pass {@code -p way=KILN}. {@code gpu/verify}
 * runs it.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class GpuNcclBenchmark {

    private static final Duration READY = Duration.ofSeconds(20);

    /** What one operation does. */
    public enum Op {
        /** An all-reduce (sum) of floats. */
        ALL_REDUCE,
        /** A grouped send to and receive from the rank itself. */
        SEND_RECV
    }

    /** Through which API. */
    public enum Way {
        /** The baseline: a blocking communicator and the raw {@code dev.kiln.nccl.Nccl} calls. */
        RAW,
        /** Kiln's {@link Communicator}: {@link NcclCommunicator}, non-blocking. */
        KILN
    }

    /** The buffers, the stream and the communicator of one way. */
    @State(Scope.Benchmark)
    public static class Rank {
        /** Bytes per operation: 1 MiB, 64 MiB. */
        @Param({"1048576", "67108864"})
        public int bytes;
        /** What one operation does. */
        @Param({"ALL_REDUCE", "SEND_RECV"})
        public Op op;
        /** Through which API. */
        @Param({"RAW", "KILN"})
        public Way way;

        DeviceOps ops;
        long stream;
        long send;
        long recv;
        long count;
        Communicator communicator;
        long comm;

        /**
         * Opens GPU 0, allocates the buffers, joins a one-rank communicator, and checks two results byte for byte.
         *
         * @throws IllegalStateException without a GPU or NCCL, with the reason, or on a wrong result
         */
        @Setup(Level.Trial)
        public void setUp() {
            if (way == Way.RAW && GpuBench.simulated()) {
                throw new IllegalStateException("GpuNcclBenchmark RAW calls libnccl, which a simulated GPU does not have:"
                        + " run -p way=KILN with -D" + GpuBench.PROPERTY + "=simulated");
            }
            GpuBench.requireGpu("GpuNcclBenchmark");
            if (!GpuBench.simulated() && !Nccl.isAvailable()) {
                throw new IllegalStateException("GpuNcclBenchmark needs NCCL: " + Nccl.unavailableReason());
            }
            ops = GpuBench.open("GpuNcclBenchmark");
            try {
                count = bytes / Float.BYTES;
                stream = ops.createStream(0);
                send = ops.allocate(0, bytes);
                recv = ops.allocate(0, bytes);
                if (way == Way.KILN) {
                    ops.setCurrentDevice(0); // a rank joins on a thread whose current device is its own
                    communicator = ops.joinCommunicator(1, ops.newCommunicatorId(), 0, 0, stream);
                    communicator.awaitReady(READY);
                } else {
                    Cuda.setDevice(0);
                    comm = Nccl.commInitRank(1, Nccl.uniqueId(), 0);
                }
                for (long seed = 1; seed <= 2; seed++) {
                    GpuBench.fill(ops, send, bytes, seed, stream);
                    run();
                    GpuBench.check("GpuNcclBenchmark " + op + " " + way + " of " + bytes + " bytes", ops, recv, bytes,
                            seed, stream);
                }
            } catch (RuntimeException | Error e) {
                tearDown();
                throw e;
            }
        }

        /** One operation, waited for. */
        void run() {
            if (way == Way.KILN) {
                Communicator c = communicator;
                if (op == Op.ALL_REDUCE) {
                    c.allReduce(send, recv, count, DType.F32);
                } else {
                    c.groupStart();
                    c.send(send, bytes, 0);
                    c.recv(recv, bytes, 0);
                    c.groupEnd();
                }
                c.synchronize();
                return;
            }
            if (op == Op.ALL_REDUCE) {
                Nccl.allReduce(send, recv, count, NcclDataType.FLOAT32, NcclRedOp.SUM, comm, stream);
            } else {
                Nccl.groupStart();
                Nccl.send(send, bytes, NcclDataType.UINT8, 0, comm, stream);
                Nccl.recv(recv, bytes, NcclDataType.UINT8, 0, comm, stream);
                Nccl.groupEnd();
            }
            Cuda.streamSynchronize(stream);
        }

        /** Ends the communicator in order and frees the rest; safe after a failed setup. */
        @TearDown(Level.Trial)
        public void tearDown() {
            if (ops == null) {
                return;
            }
            try {
                if (communicator != null) {
                    communicator.finish(READY);
                }
                if (comm != 0) {
                    Nccl.commDestroy(comm);
                }
                for (long p : new long[] {recv, send}) {
                    if (p != 0) {
                        ops.free(p);
                    }
                }
                if (stream != 0) {
                    ops.destroyStream(stream);
                }
            } finally {
                ops.close();
                ops = null;
            }
        }
    }

    /**
     * One all-reduce or grouped exchange, waited for.
     *
     * @param r the state
     * @return the receive buffer, so that nothing is optimized away
     */
    @Benchmark
    public long collective(Rank r) {
        r.run();
        return r.recv;
    }
}

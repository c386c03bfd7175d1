package dev.kiln.bench;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
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

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Bandwidth of a tensor sent through a {@link ShmChannel} (a file in {@code /dev/shm}, slots sized
 * to fit the encoded tensor, growth off) against {@code MemorySegment.copy} of the same bytes
 * between two off-heap segments, in the same run. {@link Mode#Throughput}: one operation moves one
 * tensor of {@code bytes}, so bytes per second = operations per second x {@code bytes} (the report
 * multiplies). With {@code -prof gc}, {@code gc.alloc.rate.norm} is the bytes this JVM allocated per
 * tensor.
 *
 * <p>One benchmark method, the {@link Way} a parameter: JMH varies the last parameter fastest, so
 * the copy and the channel paths of one size run one after the other, as close in time as JMH
 * allows; on a shared machine their ratio still moves with the load.
 *
 * <p>Every tensor sent carries its sequence number in its first and last element (two stores per
 * operation), so that a reader can tell one sequence from the next. {@code @Setup} sends
 * {@code 3 x slots} tensors and checks them, which also faults in every page of the channel's file
 * (a fresh tmpfs page costs a page fault on first touch): only the steady state is measured.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class ShmTransferBenchmark {

    /** Polls spent spinning before a futex wait: a few microseconds. */
    static final int SPINS = 100;
    /** A futex wait's timeout, after which the waiter checks that its peer still runs. */
    static final long FUTEX_NANOS = TimeUnit.MILLISECONDS.toNanos(10);
    /** The channel's name: its file is {@code /dev/shm/kiln-<pid>-bench-transfer.shm}. */
    private static final String NAME = "bench-transfer";
    /** Longest wait of setup and of one operation for the reader JVM. */
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(60);

    /** How one tensor moves. */
    public enum Way {
        /** The floor: {@code MemorySegment.copy} between two segments of an {@link Arena}, to the same destination every time. */
        MEMCPY(0),
        /**
         * One thread {@code offer}s (the codec copies the tensor into the slot once), {@code poll}s (a
         * zero-copy view), reads the view's first and last element, and {@code release}s. One slot, so the
         * copy goes to the same memory every time, as {@link #MEMCPY}'s: copy plus protocol cost.
         */
        SAME_PROCESS(1),
        /**
         * This thread is the writer, one tensor in flight: each offer waits until the reader JVM
         * ({@link ShmTransferReader}) released the previous one. It maps the file as the reader, checks the
         * first and last element of each view against the sequence, and releases it.
         */
        CROSS_PROCESS_1(1),
        /** As {@link #CROSS_PROCESS_1}, with up to 4 tensors in flight (4 slots). */
        CROSS_PROCESS_4(4);

        private final int slots;

        Way(int slots) {
            this.slots = slots;
        }

        /** @return the channel's slot count, the tensors in flight at most; 0 for {@link #MEMCPY} */
        public int slots() {
            return slots;
        }

        /** @return whether a second JVM reads */
        public boolean crossProcess() {
            return this == CROSS_PROCESS_1 || this == CROSS_PROCESS_4;
        }
    }

    /** What one way needs: segments, or a tensor and a channel, and the reader JVM. */
    @State(Scope.Benchmark)
    public static class Transfer {
        /** The tensor's size in bytes: 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB. */
        @Param({"4096", "65536", "1048576", "16777216", "67108864"})
        public int bytes;
        /** How it moves. */
        @Param({"MEMCPY", "SAME_PROCESS", "CROSS_PROCESS_1", "CROSS_PROCESS_4"})
        public Way way;

        Arena arena;
        MemorySegment from;
        MemorySegment to;
        Tensor tensor;
        ShmChannel channel;
        Process reader;
        long sequence;

        /**
         * Allocates the segments, or creates the tensor and the channel, starts the reader JVM if there
         * is one, and sends and checks {@code 3 x slots} tensors.
         *
         * @throws IOException if the channel's file cannot be created or the reader JVM cannot start
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            if (way == Way.MEMCPY) {
                arena = Arena.ofShared();
                from = arena.allocate(bytes, 64);
                to = arena.allocate(bytes, 64);
                from.fill((byte) 7);
                to.fill((byte) 1);
                return;
            }
            tensor = Tensor.allocate(DType.I64, bytes / Long.BYTES);
            try {
                channel = create(tensor, way.slots());
                if (way.crossProcess()) {
                    reader = startReader(channel, way.slots());
                }
                for (int i = 0; i < 3 * way.slots(); i++) {
                    long s = sequence;
                    if (move(this) != 0) {
                        throw new IllegalStateException("sequence " + s + ": the view's first and last element differ");
                    }
                }
                if (reader != null && !channel.awaitReleased(sequence - 1 + way.slots(), WAIT_NANOS)) {
                    throw new IllegalStateException("the reader JVM did not release what it was sent within 60 s");
                }
            } catch (IOException | RuntimeException e) {
                tearDown();
                throw e;
            }
        }

        /**
         * Frees the segments; or closes the reader JVM's standard input, which ends it, kills it if it
         * has not ended within 10 seconds, closes the channel (which removes its file) and frees the tensor.
         */
        @TearDown(Level.Trial)
        public void tearDown() {
            if (arena != null) {
                arena.close();
                return;
            }
            try {
                if (reader != null) {
                    stop(reader);
                }
            } finally {
                if (channel != null) {
                    channel.close();
                }
                tensor.close();
            }
        }
    }

    /** One writer, one reader, slots of {@code slotBytes}. */
    static ChannelSpec spec(int slots, long slotBytes) {
        return new ChannelSpec(0, 0, 0, List.of(1), slots, slotBytes, Transport.SHARED_MEMORY,
                "ShmTransferBenchmark");
    }

    private static ShmChannel create(Tensor tensor, int slots) throws IOException {
        removeStale();
        ValueCodec codec = new ValueCodec();
        // encode answers minus the bytes it needs when the target is too small: the tensor and its header.
        long slotBytes = -codec.encode(tensor, MemorySegment.NULL);
        return ShmChannel.create(spec(slots, slotBytes), ShmChannel.DEFAULT_DIRECTORY, NAME, codec, false, null,
                new Waker[1]);
    }

    /**
     * Removes this benchmark's files left by a benchmark JVM that was killed (its teardown removes them
     * otherwise). Only this benchmark's: other Kiln processes on the machine may still use theirs.
     */
    private static void removeStale() throws IOException {
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

    private static Process startReader(ShmChannel channel, int slots) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(ShmTransferReader.class.getName());
        command.add(channel.path().toString());
        command.add(String.valueOf(slots));
        // Standard input stays a pipe from this JVM: its end (closed, or this JVM gone) ends the reader.
        return new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.INHERIT)
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
    }

    private static void stop(Process reader) {
        try {
            reader.getOutputStream().close();
            if (!reader.waitFor(10, TimeUnit.SECONDS)) {
                System.err.println("ShmTransferBenchmark: the reader JVM did not exit within 10 s; killing it");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            reader.destroyForcibly();
        }
    }

    /** Sends the next tensor the channel's way; in process, returns the view's first element xor its last (0). */
    private static long move(Transfer t) {
        long sequence = t.sequence;
        t.tensor.data().set(ValueLayout.JAVA_LONG_UNALIGNED, 0, sequence);
        t.tensor.data().set(ValueLayout.JAVA_LONG_UNALIGNED, t.tensor.byteSize() - Long.BYTES, sequence);
        if (t.reader == null) {
            if (!t.channel.offer(sequence, t.tensor)) {
                throw new IllegalStateException("sequence " + sequence + ": the only slot was not released");
            }
            Tensor view = (Tensor) t.channel.poll(0, sequence);
            long touched = view.getLong(0) ^ view.getLong(view.numel() - 1);
            t.channel.release(0, sequence);
            t.sequence = sequence + 1;
            return touched;
        }
        int spins = 0;
        long deadline = 0;
        while (!t.channel.offer(sequence, t.tensor)) {
            if (spins < SPINS) {
                spins++;
                Thread.onSpinWait();
            } else if (!t.channel.awaitReleased(sequence, FUTEX_NANOS)) {
                if (!t.reader.isAlive()) {
                    throw new IllegalStateException("the reader JVM exited with " + t.reader.exitValue()
                            + " (1: it read a wrong value; see its output above)");
                }
                if (deadline == 0) {
                    deadline = System.nanoTime() + WAIT_NANOS;
                } else if (System.nanoTime() - deadline > 0) {
                    throw new IllegalStateException("the reader JVM released nothing for 60 s");
                }
            }
        }
        t.sequence = sequence + 1;
        return 0;
    }

    /**
     * @param t the segments, or the tensor, the channel and the reader JVM
     * @return the view's first element xor its last in process (0), else 0
     */
    @Benchmark
    public long transfer(Transfer t) {
        if (t.way == Way.MEMCPY) {
            MemorySegment.copy(t.from, 0, t.to, 0, t.bytes);
            return 0;
        }
        return move(t);
    }
}

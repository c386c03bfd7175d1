package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.transport.Channel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * The channels of one compiled graph as one process sees them: the driver's JVM or a worker
 * JVM. Opening takes two phases, run in every process of the graph in step: {@link #create}
 * makes the in-process channels and the shared-memory channels this process writes (their
 * files exist once every process finished phase one), {@link #open} maps the shared-memory
 * channels this process only reads. Channels no participant of this process touches stay null.
 *
 * <p>A shared-memory channel's file is {@code kiln-<writer pid>-<graph>-c<id>.shm} in the
 * shared-memory directory, so every process can name it from the plan and the pids alone.
 *
 * <p>Not thread-safe: used by the thread that sets up or tears down the graph.
 */
public final class GraphChannels {

    private final ExecutionPlan plan;
    private final String process;
    private final String graph;
    private final Map<String, Long> pids;
    private final IntFunction<Waker> wakers;
    private final ValueCodec codec;
    private final Path directory;
    private final boolean growth;
    private final Map<Integer, String> processOf = new HashMap<>();
    private final Channel[] channels;

    /**
     * @param plan      the plan
     * @param process   this process's name in the plan's placements ({@code driver} for the driver's JVM)
     * @param graph     the graph's name, unique among the driver's graphs ({@code [A-Za-z0-9_-]})
     * @param pids      the pid of every process of the graph, by process name
     * @param wakers    the waker of a participant (actor id or {@link ExecutionPlan#DRIVER}) of this process
     * @param codec     encodes values for shared-memory channels
     * @param directory the shared-memory directory
     * @param growth    whether shared-memory channels grow their slots for larger values
     */
    public GraphChannels(ExecutionPlan plan, String process, String graph, Map<String, Long> pids,
                         IntFunction<Waker> wakers, ValueCodec codec, Path directory, boolean growth) {
        this.plan = plan;
        this.process = process;
        this.graph = graph;
        this.pids = Map.copyOf(pids);
        this.wakers = wakers;
        this.codec = codec;
        this.directory = directory;
        this.growth = growth;
        this.channels = new Channel[plan.channels().size()];
        processOf.put(ExecutionPlan.DRIVER, "driver");
        for (ActorSchedule s : plan.schedules()) {
            processOf.put(s.actor(), s.placement().process());
        }
    }

    /**
     * The shared-memory bytes this process's written channels need, checked against the free
     * space of the directory before anything is created.
     *
     * @param plan      the plan
     * @param directory the shared-memory directory
     * @throws IllegalStateException naming the need, the space and the options to change, if it does not fit
     */
    public static void checkSpace(ExecutionPlan plan, Path directory) {
        long needed = 0;
        for (ChannelSpec c : plan.channels()) {
            if (c.transport() == Transport.SHARED_MEMORY) {
                needed = saturatedAdd(needed, ShmChannel.fileBytes(c));
            }
        }
        if (needed == 0) {
            return;
        }
        long usable;
        try {
            usable = Files.getFileStore(directory).getUsableSpace();
        } catch (IOException e) {
            throw new IllegalStateException("cannot use the shared-memory directory " + directory + ": " + e
                    + "; set KilnOptions.shmDirectory to a writable tmpfs", e);
        }
        if (usable < needed) {
            throw new IllegalStateException("the plan's shared-memory channels need " + needed + " bytes in "
                    + directory + ", which has " + usable + " usable: lower CompileOptions.bufferBytes or maxInflight, "
                    + "or set KilnOptions.shmDirectory to a larger tmpfs");
        }
    }

    private static long saturatedAdd(long a, long b) {
        long sum = a + b;
        return sum < 0 ? Long.MAX_VALUE : sum;
    }

    /**
     * Phase one: creates the in-process channels of this process and the shared-memory channels it writes.
     *
     * @return this
     * @throws UncheckedIOException if a shared-memory file cannot be created (every channel made so far is closed)
     */
    public GraphChannels create() {
        try {
            for (ChannelSpec spec : plan.channels()) {
                boolean writes = here(spec.writer());
                if (spec.transport() != Transport.IN_PROCESS && spec.transport() != Transport.SHARED_MEMORY) {
                    throw new IllegalStateException("channel c" + spec.id() + " was planned as " + spec.transport()
                            + "; this executor runs IN_PROCESS and SHARED_MEMORY channels only (GPU channels are "
                            + "planned, not built yet)");
                }
                if (spec.transport() == Transport.IN_PROCESS) {
                    if (writes) {
                        channels[spec.id()] = new InProcessChannel(spec, wakers.apply(spec.writer()), readerWakers(spec));
                    }
                } else if (writes) {
                    channels[spec.id()] = ShmChannel.create(spec, directory, name(spec), codec, growth,
                            wakers.apply(spec.writer()), readerWakers(spec));
                }
            }
            return this;
        } catch (IOException e) {
            close();
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * Phase two: maps the shared-memory channels that this process reads and another one writes.
     *
     * @return this
     * @throws UncheckedIOException if a file cannot be mapped (every channel of this process is closed)
     */
    public GraphChannels open() {
        try {
            for (ChannelSpec spec : plan.channels()) {
                if (channels[spec.id()] == null && spec.transport() == Transport.SHARED_MEMORY && readsHere(spec)) {
                    channels[spec.id()] = ShmChannel.open(spec, file(spec), codec, readerWakers(spec));
                }
            }
            return this;
        } catch (IOException e) {
            close();
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** @return the channels by id; null where no participant of this process touches one */
    public Channel[] channels() {
        return channels;
    }

    /**
     * @param spec a shared-memory channel of the plan
     * @return its file, named after its writer's pid
     */
    public Path file(ChannelSpec spec) {
        Long pid = pids.get(processOf.get(spec.writer()));
        if (pid == null) {
            throw new IllegalStateException("no pid for process " + processOf.get(spec.writer()) + " of c" + spec.id());
        }
        return directory.resolve("kiln-" + pid + "-" + name(spec) + ".shm");
    }

    /** Closes every channel of this process (the writer's close deletes its files); idempotent. */
    public void close() {
        RuntimeException failure = null;
        for (int i = 0; i < channels.length; i++) {
            Channel c = channels[i];
            channels[i] = null;
            if (c != null) {
                try {
                    c.close();
                } catch (RuntimeException e) {
                    if (failure == null) {
                        failure = e;
                    } else {
                        failure.addSuppressed(e);
                    }
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private String name(ChannelSpec spec) {
        return graph + "-c" + spec.id();
    }

    private boolean here(int participant) {
        return process.equals(processOf.get(participant));
    }

    private boolean readsHere(ChannelSpec spec) {
        for (int r : spec.readers()) {
            if (here(r)) {
                return true;
            }
        }
        return false;
    }

    private Waker[] readerWakers(ChannelSpec spec) {
        Waker[] w = new Waker[spec.readers().size()];
        for (int r = 0; r < w.length; r++) {
            int participant = spec.readers().get(r);
            w[r] = here(participant) ? wakers.apply(participant) : null;
        }
        return w;
    }
}

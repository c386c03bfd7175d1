package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.transport.AeronUdpChannel;
import dev.kiln.transport.Channel;
import dev.kiln.transport.CheckedViewsChannel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import io.aeron.Aeron;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

/**
 * The channels of one compiled graph as one process sees them: the driver's JVM or a worker
 * JVM. Opening takes two phases, run in every process of the graph in step: {@link #create}
 * makes the in-process channels, the shared-memory channels this process writes (their files
 * exist once every process finished phase one) and the sides of the Aeron UDP channels this
 * process writes or reads; {@link #open} maps the shared-memory channels this process only
 * reads. Channels no participant of this process touches stay null.
 *
 * <p>A shared-memory channel's file is {@code kiln-<writer pid>-<graph>-c<id>.shm} in the
 * writer's shared-memory directory, so every process can name it from the plan and the
 * {@link Peer}s alone. A UDP channel's writer and readers meet at the endpoints of their
 * processes, on the streams {@link UdpSettings} assigns.
 *
 * <p>Not thread-safe: used by the thread that sets up or tears down the graph.
 */
public final class GraphChannels {

    private final ExecutionPlan plan;
    private final String process;
    private final String graph;
    private final Map<String, Peer> peers;
    private final IntFunction<Waker> wakers;
    private final ValueCodec codec;
    private final boolean growth;
    private final boolean checkViews;
    private final Aeron aeron;
    private final UdpSettings udp;
    private final Map<Integer, String> processOf = new HashMap<>();
    private final Channel[] channels;

    /**
     * @param plan    the plan
     * @param process this process's name in the plan's placements ({@code driver} for the driver's JVM)
     * @param graph   the graph's name, unique among the driver's graphs ({@code [A-Za-z0-9_-]})
     * @param peers   every process of the graph, by process name
     * @param wakers  the waker of a participant (actor id or {@link ExecutionPlan#DRIVER}) of this process
     * @param codec   encodes values for shared-memory and UDP channels
     * @param growth  whether channels that copy grow their slots for larger values
     * @param checkViews whether tensors read from copying channels are closed on release ({@link CheckedViewsChannel})
     * @param aeron   the client of this host's media driver, for UDP channels; null if the plan has none
     * @param udp     how the plan's UDP channels are laid out; null if it has none
     */
    public GraphChannels(ExecutionPlan plan, String process, String graph, Map<String, Peer> peers,
                         IntFunction<Waker> wakers, ValueCodec codec, boolean growth, boolean checkViews, Aeron aeron,
                         UdpSettings udp) {
        this.plan = plan;
        this.process = process;
        this.graph = graph;
        this.peers = Map.copyOf(peers);
        this.wakers = wakers;
        this.codec = codec;
        this.growth = growth;
        this.checkViews = checkViews;
        this.aeron = aeron;
        this.udp = udp;
        this.channels = new Channel[plan.channels().size()];
        processOf.put(ExecutionPlan.DRIVER, "driver");
        for (ActorSchedule s : plan.schedules()) {
            processOf.put(s.actor(), s.placement().process());
        }
    }

    /**
     * Checks that shared-memory channels fit in the free space of the directory they live in,
     * before anything is created.
     *
     * @param channels  the shared-memory channels that live in {@code directory}
     * @param directory the shared-memory directory
     * @throws IllegalStateException naming the need, the space and the options to change, if they do not fit
     */
    public static void checkSpace(List<ChannelSpec> channels, Path directory) {
        long needed = 0;
        for (ChannelSpec c : channels) {
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
                switch (spec.transport()) {
                    case IN_PROCESS -> {
                        if (writes) {
                            channels[spec.id()] = new InProcessChannel(spec, wakers.apply(spec.writer()),
                                    readerWakers(spec));
                        }
                    }
                    case SHARED_MEMORY -> {
                        if (writes) {
                            channels[spec.id()] = checked(ShmChannel.create(spec, Path.of(peer(process).shmDirectory()),
                                    name(spec), codec, growth, wakers.apply(spec.writer()), readerWakers(spec)));
                        }
                    }
                    case AERON_UDP -> {
                        if (writes || readsHere(spec)) {
                            channels[spec.id()] = checked(udpEnds(spec, writes));
                        }
                    }
                    default -> throw new IllegalStateException("channel c" + spec.id() + " was planned as "
                            + spec.transport() + "; this executor runs IN_PROCESS, SHARED_MEMORY and AERON_UDP channels "
                            + "only (GPU channels are planned, not built yet)");
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

    /** In debug mode, a channel whose reads are slot views closes each view when its slot is released. */
    private Channel checked(Channel channel) {
        return checkViews ? new CheckedViewsChannel(channel) : channel;
    }

    /** The sides of a UDP channel in this process: the writer's, if it writes, and those of its readers here. */
    private Channel udpEnds(ChannelSpec spec, boolean writes) {
        if (aeron == null || udp == null) {
            throw new IllegalStateException("channel c" + spec.id() + " goes over Aeron UDP, but " + process
                    + " has no UDP endpoint: a runtime that hosts actors on other hosts listens for workers "
                    + "(KilnOptions.listen and joinSecret)");
        }
        String writerProcess = processOf.get(spec.writer());
        List<String> readerProcesses = new ArrayList<>();
        List<String> endpoints = new ArrayList<>();
        for (int r : spec.readers()) {
            readerProcesses.add(processOf.get(r));
            endpoints.add(endpointOf(processOf.get(r), spec));
        }
        int data = udp.dataStream(plan, spec.id());
        AeronUdpChannel.Route route = new AeronUdpChannel.Route(endpointOf(writerProcess, spec), endpoints, data,
                data + spec.readers().size(), udp.mtuLength(), udp.termLength());
        AeronUdpChannel writer = null;
        AeronUdpChannel[] readers = new AeronUdpChannel[spec.readers().size()];
        try {
            if (writes) {
                writer = AeronUdpChannel.writer(aeron, spec, route, codec, growth, udp.peerTimeoutNs());
            }
            for (int r = 0; r < readers.length; r++) {
                if (here(spec.readers().get(r))) {
                    readers[r] = AeronUdpChannel.reader(aeron, spec, route, r, codec, growth, udp.peerTimeoutNs());
                }
            }
        } catch (RuntimeException e) {
            new UdpChannelEnds(spec, writer, readers, writerProcess, readerProcesses).close();
            throw e;
        }
        return new UdpChannelEnds(spec, writer, readers, writerProcess, readerProcesses);
    }

    private String endpointOf(String processName, ChannelSpec spec) {
        String endpoint = peer(processName).endpoint();
        if (endpoint == null) {
            throw new IllegalStateException("channel c" + spec.id() + " goes over Aeron UDP, but " + processName
                    + " has no UDP endpoint: a runtime that hosts actors on other hosts listens for workers "
                    + "(KilnOptions.listen and joinSecret)");
        }
        return endpoint;
    }

    private Peer peer(String processName) {
        Peer p = peers.get(processName);
        if (p == null) {
            throw new IllegalStateException("no peer record for process " + processName + " of " + graph);
        }
        return p;
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
                    channels[spec.id()] = checked(ShmChannel.open(spec, file(spec), codec, readerWakers(spec)));
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
     * @return its file in its writer's directory, named after its writer's pid
     */
    public Path file(ChannelSpec spec) {
        Peer writer = peer(processOf.get(spec.writer()));
        return Path.of(writer.shmDirectory()).resolve("kiln-" + writer.pid() + "-" + name(spec) + ".shm");
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

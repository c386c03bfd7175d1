package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.Transport;
import dev.kiln.transport.AeronUdpChannel;
import dev.kiln.transport.Channel;
import dev.kiln.transport.CheckedViewsChannel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.CudaIpcChannel;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.NcclChannel;
import dev.kiln.transport.gpu.SameDeviceChannel;
import dev.kiln.transport.gpu.StagedChannel;
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
 * makes what other processes will open (the shared-memory files and CUDA IPC handles this process
 * writes), the in-process and same-device channels, and the sides of the Aeron UDP channels; {@link #open}
 * opens what others made (the shared-memory, staged and CUDA IPC channels this process only reads) and
 * builds the NCCL channels' ends, whose communicators joined in phase one. Channels no participant of this
 * process touches stay null.
 *
 * <p>Every transport of the plan is built here, for every kind of host: in-process, shared memory, Aeron UDP,
 * and the GPU ones: same device ({@link SameDeviceChannel}), staged through host memory ({@link StagedChannel}; a
 * reader without a GPU gets host tensors), CUDA IPC ({@link CudaIpcChannel}) and NCCL ({@link NcclChannel}, with a
 * side channel for each value's shape that is in-process, shared memory or Aeron UDP as its participants are placed:
 * {@link #sideTransport}). A GPU end uses its actor's device and stream ({@link ActorGpu}); NCCL ends use the
 * actor's rank and communication stream ({@link GraphComms}).
 *
 * <p>A shared-memory channel's file is {@code kiln-<writer pid>-<graph>-c<id>.shm} in the
 * writer's shared-memory directory (an NCCL side channel's {@code ...-c<id>m.shm}), so every process can name it
 * from the plan and the {@link Peer}s alone. A UDP channel's writer and readers meet at the endpoints of their
 * processes, on the streams {@link UdpSettings} assigns.
 *
 * <p>Not thread-safe: used by the thread that sets up or tears down the graph.
 */
public final class GraphChannels {

    /** Bytes of a slot of an NCCL side channel: a shape header, or a short error record (slots grow for longer). */
    private static final long SIDE_SLOT_BYTES = 1024;

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private final ExecutionPlan plan;
    private final String process;
    private final String graph;
    private final Map<String, Peer> peers;
    private final IntFunction<Waker> wakers;
    private final IntFunction<ActorGpu> gpus;
    private final Gpus runtimeGpus;
    private GraphComms comms;
    private final ValueCodec codec;
    private final boolean growth;
    private final boolean checkViews;
    private final Aeron aeron;
    private final UdpSettings udp;
    private final Map<Integer, String> processOf = new HashMap<>();
    private final Channel[] channels;
    /** Ends made before the channel is whole (phase one), by channel id; moved into {@link #channels} by open. */
    private final Channel[] writerEnds;
    /** NCCL side channels, by channel id. */
    private final Channel[] sides;
    /** NCCL ends of this process, by channel id then side (the writer's end at index 0, reader r's at r + 1). */
    private final Map<Integer, NcclChannel[]> ncclEnds = new HashMap<>();
    /** The authenticated UDP sides of this process, whose dropped frames {@link #close} reports. */
    private final List<AeronUdpChannel> authenticated = new ArrayList<>();

    /**
     * @param plan        the plan
     * @param process     this process's name in the plan's placements ({@code driver} for the driver's JVM)
     * @param graph       the graph's name, unique among the driver's graphs ({@code [A-Za-z0-9_-]})
     * @param peers       every process of the graph, by process name
     * @param wakers      the waker of a participant (actor id or {@link ExecutionPlan#DRIVER}) of this process
     * @param gpus        the GPU of an actor of this process, or null (the driver, an actor without a GPU)
     * @param runtimeGpus this process's GPUs, asked for their device operations when a GPU end is built here
     * @param codec       encodes values for shared-memory and UDP channels
     * @param growth      whether channels that copy grow their slots for larger values
     * @param checkViews  whether tensors read from copying channels are closed on release ({@link CheckedViewsChannel})
     * @param aeron       the client of this host's media driver, for UDP channels; null if the plan has none
     * @param udp         how the plan's UDP channels are laid out; null if it has none
     */
    public GraphChannels(ExecutionPlan plan, String process, String graph, Map<String, Peer> peers,
                         IntFunction<Waker> wakers, IntFunction<ActorGpu> gpus, Gpus runtimeGpus, ValueCodec codec,
                         boolean growth, boolean checkViews, Aeron aeron, UdpSettings udp) {
        this.plan = plan;
        this.process = process;
        this.graph = graph;
        this.peers = Map.copyOf(peers);
        this.wakers = wakers;
        this.gpus = gpus;
        this.runtimeGpus = runtimeGpus;
        this.codec = codec;
        this.growth = growth;
        this.checkViews = checkViews;
        this.aeron = aeron;
        this.udp = udp;
        this.channels = new Channel[plan.channels().size()];
        this.writerEnds = new Channel[channels.length];
        this.sides = new Channel[channels.length];
        processOf.put(ExecutionPlan.DRIVER, "driver");
        for (ActorSchedule s : plan.schedules()) {
            processOf.put(s.actor(), s.placement().process());
        }
    }

    /**
     * The host transport that carries an NCCL channel's per-value shape headers between its participants (any of
     * which may be the writer): in-process when they share one JVM, shared memory when they share a host,
     * Aeron UDP otherwise.
     *
     * @param plan the plan
     * @param spec an NCCL channel of it
     * @return {@link Transport#IN_PROCESS}, {@link Transport#SHARED_MEMORY} or {@link Transport#AERON_UDP}
     */
    public static Transport sideTransport(ExecutionPlan plan, ChannelSpec spec) {
        ActorPlacement writer = placement(plan, spec.writer());
        Transport t = Transport.IN_PROCESS;
        for (int r : spec.readers()) {
            ActorPlacement reader = placement(plan, r);
            if (!reader.host().equals(writer.host())) {
                return Transport.AERON_UDP;
            }
            if (!reader.sameProcess(writer)) {
                t = Transport.SHARED_MEMORY;
            }
        }
        return t;
    }

    private static ActorPlacement placement(ExecutionPlan plan, int actor) {
        for (ActorSchedule s : plan.schedules()) {
            if (s.actor() == actor) {
                return s.placement();
            }
        }
        throw new IllegalArgumentException("participant " + actor + " is no actor of the plan");
    }

    /** The spec of an NCCL channel's side channel: its participants and slots, host slots for headers. */
    private static ChannelSpec sideSpec(ExecutionPlan plan, ChannelSpec spec) {
        return new ChannelSpec(spec.id(), spec.node(), spec.writer(), spec.readers(), spec.slots(), SIDE_SLOT_BYTES,
                sideTransport(plan, spec), "side channel of NCCL c" + spec.id());
    }

    /**
     * The bytes the plan's host-memory files take in one shared-memory directory.
     *
     * @param plan      the plan
     * @param channels  the channels whose files live in that directory (their writer is on its host)
     * @return the bytes: shared-memory channels, staged channels' pinned slots, CUDA IPC and NCCL side channels
     */
    public static long fileBytes(ExecutionPlan plan, List<ChannelSpec> channels) {
        long needed = 0;
        for (ChannelSpec c : channels) {
            long bytes = switch (c.transport()) {
                case SHARED_MEMORY -> ShmChannel.fileBytes(c);
                case STAGED -> StagedChannel.fileBytes(c);
                case CUDA_IPC -> CudaIpcChannel.fileBytes(c);
                case NCCL -> sideTransport(plan, c) == Transport.SHARED_MEMORY
                        ? ShmChannel.fileBytes(sideSpec(plan, c)) : 0;
                default -> 0;
            };
            needed = saturatedAdd(needed, bytes);
        }
        return needed;
    }

    /**
     * Checks that the plan's host-memory files fit in the free space of the directory they live in,
     * before anything is created.
     *
     * @param plan      the plan
     * @param channels  the channels whose files live in {@code directory}
     * @param directory the shared-memory directory
     * @throws IllegalStateException naming the need, the space and the options to change, if they do not fit
     */
    public static void checkSpace(ExecutionPlan plan, List<ChannelSpec> channels, Path directory) {
        long needed = fileBytes(plan, channels);
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
     * Phase one: creates the in-process and same-device channels of this process, the files of the channels it
     * writes, and the sides of its UDP channels.
     *
     * @return this
     * @throws UncheckedIOException if a file cannot be created (every channel made so far is closed)
     */
    public GraphChannels create() {
        try {
            for (ChannelSpec spec : plan.channels()) {
                boolean writes = here(spec.writer());
                int id = spec.id();
                switch (spec.transport()) {
                    case IN_PROCESS -> {
                        if (writes) {
                            channels[id] = new InProcessChannel(spec, wakers.apply(spec.writer()), readerWakers(spec));
                        }
                    }
                    case SHARED_MEMORY -> {
                        if (writes) {
                            channels[id] = checked(ShmChannel.create(spec, directory(), name(spec), codec, growth,
                                    wakers.apply(spec.writer()), readerWakers(spec)));
                        }
                    }
                    case AERON_UDP -> {
                        if (writes || readsHere(spec)) {
                            channels[id] = checked(udpEnds(spec, writes));
                        }
                    }
                    case GPU_SAME_DEVICE -> {
                        if (writes) {
                            long[] streams = new long[spec.readers().size()];
                            for (int r = 0; r < streams.length; r++) {
                                streams[r] = gpu(spec, spec.readers().get(r)).stream();
                            }
                            channels[id] = new SameDeviceChannel(spec, ops(), gpu(spec, spec.writer()).device(), streams,
                                    wakers.apply(spec.writer()), readerWakers(spec));
                        }
                    }
                    case STAGED -> {
                        if (writes) {
                            writerEnds[id] = StagedChannel.createWriter(spec, directory(), name(spec), codec, ops(),
                                    gpu(spec, spec.writer()).device(), wakers.apply(spec.writer()), readerWakers(spec));
                        }
                    }
                    case CUDA_IPC -> {
                        if (writes) {
                            writerEnds[id] = CudaIpcChannel.createWriter(spec, directory(), name(spec), codec, ops(),
                                    gpu(spec, spec.writer()).device(), wakers.apply(spec.writer()), readerWakers(spec));
                        }
                    }
                    case NCCL -> {
                        if (writes || readsHere(spec)) {
                            ChannelSpec side = sideSpec(plan, spec);
                            switch (side.transport()) {
                                case IN_PROCESS -> sides[id] = new InProcessChannel(side, wakers.apply(spec.writer()),
                                        readerWakers(spec));
                                case SHARED_MEMORY -> {
                                    if (writes) {
                                        sides[id] = ShmChannel.create(side, directory(), name(spec) + "m", codec, true,
                                                wakers.apply(spec.writer()), readerWakers(spec));
                                    }
                                }
                                default -> sides[id] = udpEnds(side, writes);
                            }
                        }
                    }
                    default -> throw new IllegalStateException("channel c" + id + " has transport " + spec.transport()
                            + ", which no executor builds");
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
     * Phase two: opens the channels that this process reads and another one made, and builds the ends of the
     * channels whose writer or readers are here.
     *
     * @param ranks this process's NCCL ranks of the graph, joined
     * @return this
     * @throws UncheckedIOException if a file cannot be mapped (every channel of this process is closed)
     */
    public GraphChannels open(GraphComms ranks) {
        this.comms = ranks;
        try {
            for (ChannelSpec spec : plan.channels()) {
                int id = spec.id();
                boolean writes = here(spec.writer());
                switch (spec.transport()) {
                    case SHARED_MEMORY -> {
                        if (!writes && readsHere(spec)) {
                            channels[id] = checked(ShmChannel.open(spec, file(spec), codec, readerWakers(spec)));
                        }
                    }
                    case STAGED, CUDA_IPC -> {
                        if (writes || readsHere(spec)) {
                            channels[id] = gpuEnds(spec);
                        }
                    }
                    case NCCL -> {
                        if (writes || readsHere(spec)) {
                            channels[id] = ncclEnds(spec);
                        }
                    }
                    default -> {
                        // made whole in phase one
                    }
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

    /** The writer's end (made in phase one, if the writer is here) and the ends of the readers here. */
    private Channel gpuEnds(ChannelSpec spec) throws IOException {
        Channel writer = writerEnds[spec.id()];
        Channel[] readers = new Channel[spec.readers().size()];
        try {
            for (int r = 0; r < readers.length; r++) {
                int participant = spec.readers().get(r);
                if (!here(participant)) {
                    continue;
                }
                ActorGpu g = gpus.apply(participant);
                Waker w = wakers.apply(participant);
                if (spec.transport() == Transport.STAGED) {
                    readers[r] = g == null ? StagedChannel.openReader(spec, file(spec), codec, null, r, -1, 0, w)
                            : StagedChannel.openReader(spec, file(spec), codec, g.ops(), r, g.device(), g.stream(), w);
                } else {
                    readers[r] = CudaIpcChannel.openReader(spec, file(spec), codec, ops(), r, gpu(spec, participant).device(),
                            gpu(spec, participant).stream(), w);
                }
            }
        } catch (IOException | RuntimeException e) {
            closeOpened(readers, e);
            throw e;
        }
        writerEnds[spec.id()] = null;
        Channel ends = new ChannelEnds(spec, writer, readers, null, List.of());
        return spec.transport() == Transport.STAGED ? checked(ends) : ends;
    }

    /** Closes the ends opened before {@code failure}, adding what their closing throws to it. */
    private static void closeOpened(Channel[] opened, Exception failure) {
        for (Channel end : opened) {
            if (end != null) {
                try {
                    end.close();
                } catch (RuntimeException suppressed) {
                    failure.addSuppressed(suppressed);
                }
            }
        }
    }

    /** The NCCL ends here over the channel's side channel (opened now if another process made its file). */
    private Channel ncclEnds(ChannelSpec spec) throws IOException {
        int id = spec.id();
        ChannelSpec sideSpec = sideSpec(plan, spec);
        if (sides[id] == null) {
            sides[id] = ShmChannel.open(sideSpec, sideFile(spec), codec, readerWakers(spec));
        }
        Channel side = sides[id];
        NcclChannel[] ends = new NcclChannel[spec.readers().size() + 1];
        Channel writer = null;
        Channel[] readers = new Channel[spec.readers().size()];
        try {
            if (here(spec.writer())) {
                ActorGpu g = gpu(spec, spec.writer());
                ends[0] = NcclChannel.writer(spec, plan.nccl(), side, comms.comm(spec.writer(), 0), g.ops(), g.device(),
                        comms.stream(spec.writer()));
                writer = ends[0];
            }
            for (int r = 0; r < readers.length; r++) {
                int participant = spec.readers().get(r);
                if (here(participant)) {
                    ActorGpu g = gpu(spec, participant);
                    ends[r + 1] = NcclChannel.reader(spec, plan.nccl(), side, comms.comm(participant, 0), r, g.ops(),
                            g.device(), comms.stream(participant), g.stream());
                    readers[r] = ends[r + 1];
                }
            }
        } catch (RuntimeException e) {
            closeOpened(ends, e);
            throw e;
        }
        ncclEnds.put(id, ends);
        sides[id] = null;
        return new ChannelEnds(spec, writer, readers, side::peerLoss, List.of(side));
    }

    /**
     * @param participant an actor of this process
     * @return the NCCL ends of that actor, in channel order, to warm before its first execution
     */
    public List<NcclChannel> ncclEndsOf(int participant) {
        List<NcclChannel> ends = new ArrayList<>();
        for (ChannelSpec spec : plan.channels()) {
            NcclChannel[] e = ncclEnds.get(spec.id());
            if (e == null) {
                continue;
            }
            if (spec.writer() == participant && e[0] != null) {
                ends.add(e[0]);
            }
            for (int r = 0; r < spec.readers().size(); r++) {
                if (spec.readers().get(r) == participant && e[r + 1] != null) {
                    ends.add(e[r + 1]);
                }
            }
        }
        return ends;
    }

    private ActorGpu gpu(ChannelSpec spec, int participant) {
        ActorGpu g = gpus.apply(participant);
        if (g == null) {
            throw new IllegalStateException("channel c" + spec.id() + " (" + spec.transport() + ") needs a GPU at "
                    + participant(participant) + ", which has none in " + process);
        }
        return g;
    }

    private DeviceOps ops() {
        return runtimeGpus.ops();
    }

    private String participant(int id) {
        if (id == ExecutionPlan.DRIVER) {
            return "the driver";
        }
        for (ActorSchedule s : plan.schedules()) {
            if (s.actor() == id) {
                return "actor " + s.name();
            }
        }
        return "actor #" + id;
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
                writer = AeronUdpChannel.writer(aeron, spec, route, codec, growth, udp.peerTimeoutNs(), udp.dataKey());
            }
            for (int r = 0; r < readers.length; r++) {
                if (here(spec.readers().get(r))) {
                    readers[r] = AeronUdpChannel.reader(aeron, spec, route, r, codec, growth, udp.peerTimeoutNs(),
                            udp.dataKey());
                }
            }
        } catch (RuntimeException e) {
            new ChannelEnds(spec, writer, readers, null, List.of()).close();
            throw e;
        }
        AeronUdpChannel[] sides = readers.clone();
        AeronUdpChannel w = writer;
        if (udp.dataKey() != null) {
            if (writer != null) {
                authenticated.add(writer);
            }
            for (AeronUdpChannel r : readers) {
                if (r != null) {
                    authenticated.add(r);
                }
            }
        }
        return new ChannelEnds(spec, writer, readers, side -> {
            AeronUdpChannel s = side == Channel.WRITER_SIDE ? w : sides[side];
            int lost = s.lostPeer();
            if (lost == AeronUdpChannel.NO_PEER_LOST) {
                return null;
            }
            String peer = lost == AeronUdpChannel.WRITER ? writerProcess : readerProcesses.get(lost);
            return "c" + spec.id() + " lost " + peer + ": " + s.lossReason();
        }, List.of());
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

    /** @return the channels by id; null where no participant of this process touches one */
    public Channel[] channels() {
        return channels;
    }

    /**
     * @param spec a channel of the plan whose writer makes a shared-memory file (shared memory, staged, CUDA IPC)
     * @return its file in its writer's directory, named after its writer's pid
     */
    public Path file(ChannelSpec spec) {
        Peer writer = peer(processOf.get(spec.writer()));
        return Path.of(writer.shmDirectory()).resolve("kiln-" + writer.pid() + "-" + name(spec) + ".shm");
    }

    private Path sideFile(ChannelSpec spec) {
        Peer writer = peer(processOf.get(spec.writer()));
        return Path.of(writer.shmDirectory()).resolve("kiln-" + writer.pid() + "-" + name(spec) + "m.shm");
    }

    private Path directory() {
        return Path.of(peer(process).shmDirectory());
    }

    /**
     * Closes every channel of this process (the writer's close deletes its files); idempotent. An authenticated
     * UDP channel side that dropped forged or replayed frames says so in one WARNING line.
     */
    public void close() {
        for (AeronUdpChannel side : authenticated) {
            long forged = side.forgedFrames();
            long replayed = side.replayedFrames();
            if (forged + replayed > 0) {
                LOG.log(System.Logger.Level.WARNING, () -> graph + " " + side + " dropped " + forged + " forged or "
                        + "mutated and " + replayed + " replayed frames: something on the network sends to this "
                        + "channel without the graph's key");
            }
        }
        authenticated.clear();
        RuntimeException failure = null;
        for (Channel[] all : List.of(channels, writerEnds, sides)) {
            for (int i = 0; i < all.length; i++) {
                Channel c = all[i];
                all[i] = null;
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
        }
        ncclEnds.clear();
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

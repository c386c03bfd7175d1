package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.compiler.IdleMode;
import dev.kiln.compiler.Topology;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.ControlPlane;
import dev.kiln.executor.Gpus;
import dev.kiln.executor.Peer;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.UdpSettings;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;

import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Compiles graphs against where the runtime's actors live now and wires their deployments: validates the graph,
 * plans it, checks that the values crossing JVMs can cross, holds its actors, gives it UDP streams and opens it;
 * after a restart, compiles it again for the new placement.
 *
 * <p>Thread-safe: any thread may compile; a graph's restart thread redeploys it.
 */
final class Deployer {

    private static final System.Logger LOG = System.getLogger("dev.kiln");
    private static final SecureRandom RANDOM = new SecureRandom();

    /** The runtime's name. */
    private final String name;
    private final KilnOptions options;
    private final ValueCodec codec;
    /** The GPUs of this JVM's actors. */
    private final Gpus gpus;
    private final ActorRegistry registry;
    private final Cluster cluster;
    private final OpenGraphs graphs;
    /** The next free Aeron stream id for a graph's UDP channels; ids are never reused by one runtime. */
    private final AtomicInteger udpStreams = new AtomicInteger(ControlPlane.FIRST_GRAPH_STREAM);

    /**
     * @param name     the runtime's name
     * @param options  its options
     * @param codec    its value codec
     * @param gpus     this JVM's GPUs
     * @param registry its actors
     * @param cluster  its hosts
     * @param graphs   its open graphs
     */
    Deployer(String name, KilnOptions options, ValueCodec codec, Gpus gpus, ActorRegistry registry, Cluster cluster,
             OpenGraphs graphs) {
        this.name = name;
        this.options = options;
        this.codec = codec;
        this.gpus = gpus;
        this.registry = registry;
        this.cluster = cluster;
        this.graphs = graphs;
    }

    /**
     * Compiles and opens a graph (see {@link Kiln#compile(InputNode, Node, CompileOptions)}).
     *
     * @param owner   the runtime
     * @param input   the graph's input node
     * @param output  the result node
     * @param options compile options
     * @param <I>     the input type
     * @param <O>     the result type
     * @return the compiled graph, running
     * @throws GraphCompileException naming the node (or actor) at fault and the fix
     * @throws NullPointerException  if {@code input} is null
     * @throws IllegalStateException if the runtime is closed
     */
    <I, O> CompiledGraph<I, O> compile(Kiln owner, InputNode<I> input, Node<O> output, CompileOptions options) {
        cluster.ensureOpen();
        if (input == null) {
            throw new NullPointerException("input: pass the graph's Graph.input() node");
        }
        if (output != null && output.input() != null && output.input() != input) {
            throw new GraphCompileException(output.label(), "the output reads another input node than the one passed"
                    + " to compile; pass the Graph.input() node the graph was built on");
        }
        if (output != null) {
            boolean several = output.kind() == Node.Kind.OUTPUTS || output.kind() == Node.Kind.OUTPUT_LIST;
            for (Object out : several ? output.args() : List.of(output)) {
                Node<?> n = (Node<?>) out;
                if (n.kind() == Node.Kind.ALL_REDUCE || n.kind() == Node.Kind.CALL
                        && n.method().returnType() == dev.kiln.tensor.DeviceTensor.class) {
                    throw new GraphCompileException(n.label(), "the graph's result is a DeviceTensor, but the driver has"
                            + " no GPU: it would receive a host Tensor, not the DeviceTensor the graph's type promises;"
                            + " return a host value from the last actor (GpuContext.download or downloadFloats)");
                }
            }
        }
        ExecutionPlan plan = keepHeldActorsOnTheirThreads(GraphCompiler.compile(output, topology(), options));
        CrossingTypes.check(plan, codec, registry::inWorker);
        // The graph starts nothing until start(): its actors are held by its deployment, so a failed compile frees
        // exactly the ones it took.
        CompiledGraph<I, O> graph = new CompiledGraph<>(owner, output, options, g -> deployment(g, plan, g.toString()));
        Deployment first = graph.live();
        first.hold();
        try {
            claimNodes(output, graph);
            graphs.add(graph);
            if (cluster.isClosed()) {
                throw new IllegalStateException(name + " was closed during compile");
            }
            graph.start();
            warnIfOversubscribed(graph, options);
            return graph;
        } catch (RuntimeException e) {
            first.release();
            graphs.remove(graph);
            throw e;
        }
    }

    /**
     * Compiles a graph again for where its actors live now, after a restart recreated some of them.
     *
     * @param graph   the graph that compiled {@code output}
     * @param output  its result node
     * @param options its options
     * @param label   the new deployment's name for channel files and workers
     * @return the new deployment, its actors not held yet
     * @throws GraphCompileException if the graph does not compile for the new placement
     * @throws IllegalStateException if the runtime is closed
     */
    Deployment redeploy(CompiledGraph<?, ?> graph, Node<?> output, CompileOptions options, String label) {
        cluster.ensureOpen();
        return deployment(graph, GraphCompiler.recompile(output, graph, topology(), options), label);
    }

    /** Where every actor of this runtime lives now, and the cores of each of their JVMs, as the compiler sees it. */
    private Topology topology() {
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        Map<ActorPlacement, Integer> cores = new HashMap<>();
        ActorPlacement driver = new ActorPlacement(options.hostName(), "driver");
        cores.put(driver, Runtime.getRuntime().availableProcessors());
        for (var a : registry.handles()) {
            int id = a.id();
            placements.put(id, switch (a) {
                case ActorThread _ -> placement(id, driver.host(), driver.process());
                case RemoteActor r -> {
                    cores.put(new ActorPlacement(r.worker().hostName(), r.worker().name()),
                            r.worker().resources().cores());
                    yield placement(id, r.worker().hostName(), r.worker().name());
                }
            });
        }
        return new Topology(driver, placements, registry.usesGpus() ? peerAccess() : Topology.PeerAccess.NONE, cores);
    }

    /**
     * An actor that other open graphs hold runs on its own thread in this graph too, where the plan would have run it
     * on another actor's thread: a guest needs its actor alone, and an actor serving several graphs takes their
     * loops in turns on its own thread.
     */
    private ExecutionPlan keepHeldActorsOnTheirThreads(ExecutionPlan plan) {
        List<ActorSchedule> schedules = new ArrayList<>();
        boolean changed = false;
        for (ActorSchedule s : plan.schedules()) {
            if (s.sharesThread() && registry.handle(s.actor()).holders().first() != null) {
                schedules.add(s.onThreadOf(s.actor()));
                changed = true;
            } else {
                schedules.add(s);
            }
        }
        return !changed ? plan : new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(),
                plan.channels(), schedules, plan.outputs(), plan.multiOutput(), plan.devices(), plan.nccl(),
                plan.communicators(), plan.collectives());
    }

    /** Wires a deployment of {@code plan}: the actors of this JVM and of workers, a range of UDP streams. */
    private Deployment deployment(CompiledGraph<?, ?> graph, ExecutionPlan plan, String label) {
        Map<Integer, ActorThread> here = new HashMap<>();
        List<RemoteActor> remote = new ArrayList<>();
        for (ActorSchedule s : plan.schedules()) {
            switch (registry.handle(s.actor())) {
                case ActorThread a -> here.put(s.actor(), a);
                case RemoteActor r -> remote.add(r);
            }
        }
        int streams = UdpSettings.streams(plan);
        UdpSettings udp = streams == 0 ? null : new UdpSettings(udpStreams.getAndAdd(streams), options.udpMtu(),
                options.udpTermLength(), options.workerTimeout().toNanos(),
                options.authenticateData() ? newDataKey() : null);
        ControlPlane controlPlane = cluster.plane();
        return new Deployment(graph, label, plan, graph.options(), here, remote, codec, gpus,
                new Peer("driver", ProcessHandle.current().pid(), options.hostName(),
                        controlPlane != null ? controlPlane.endpoint() : null, options.shmDirectory().toString()),
                controlPlane != null ? controlPlane.aeron() : null, udp, options.workerStartTimeout(),
                graph.driverWaker());
    }

    /** @return a fresh key for one graph's authenticated UDP channels ({@link KilnOptions#authenticateData}) */
    private static byte[] newDataKey() {
        byte[] key = new byte[32];
        RANDOM.nextBytes(key);
        return key;
    }

    /** Where an actor lives, with its GPU and that GPU's free memory as read when the actor started. */
    private ActorPlacement placement(int id, String hostName, String process) {
        ActorRegistry.ActorDevice gpu = registry.device(id);
        return gpu == null ? new ActorPlacement(hostName, process)
                : new ActorPlacement(hostName, process, gpu.device(), gpu.uuid(), gpu.freeBytes());
    }

    /** Which devices of each host have peer access, as every live host of this runtime reports its GPUs. */
    private Topology.PeerAccess peerAccess() {
        Set<Topology.PeerAccess.Link> links = new HashSet<>();
        for (ActorHost h : cluster.hosts()) {
            WorkerInfo info = h.resources();
            List<WorkerInfo.Gpu> devices = info.gpus();
            for (int d = 0; d < devices.size(); d++) {
                for (int p = d + 1; p < devices.size(); p++) {
                    if (info.peerAccess(d, p) && info.peerAccess(p, d)) {
                        links.add(new Topology.PeerAccess.Link(info.hostName(), devices.get(d).uuid(),
                                devices.get(p).uuid()));
                    }
                }
            }
        }
        return Topology.PeerAccess.of(links);
    }

    /** SPIN with more spinning threads than CPUs turns every hand-off into a wait for the scheduler. */
    private static void warnIfOversubscribed(CompiledGraph<?, ?> graph, CompileOptions options) {
        String driver = ActorPlacement.IN_DRIVER.process();
        int threads = 1 + (int) graph.plan().schedules().stream()
                .filter(s -> !s.sharesThread() && s.placement().process().equals(driver)).count();
        int cpus = Runtime.getRuntime().availableProcessors();
        if (options.idle() == IdleMode.SPIN && threads > cpus) {
            LOG.log(System.Logger.Level.WARNING, () -> graph + " spins " + threads + " threads ("
                    + (threads - 1) + " actor threads and the driver) on " + cpus + " CPUs: with IdleMode.SPIN a waiting "
                    + "thread holds its CPU, so hand-offs wait for the scheduler (milliseconds). Use IdleMode.BACKOFF "
                    + "(the default) unless every actor has a core of its own.");
        }
    }

    private static void claimNodes(Node<?> output, Object graph) {
        List<Node<?>> work = new ArrayList<>(List.of(output));
        while (!work.isEmpty()) {
            Node<?> n = work.removeLast();
            Object previous = GraphInternals.claim(n, graph);
            if (previous != null && previous != graph) {
                throw new GraphCompileException(n.label(), "this node was compiled into " + previous
                        + " meanwhile; a node can be compiled once: bind the calls again to build a new graph");
            }
            if (previous == null) {
                for (Object arg : n.args()) {
                    if (arg instanceof Node<?> up) {
                        work.add(up);
                    }
                }
                if (n.kind() == Node.Kind.ALL_REDUCE) {
                    work.addAll(n.collective());
                }
            }
        }
    }
}

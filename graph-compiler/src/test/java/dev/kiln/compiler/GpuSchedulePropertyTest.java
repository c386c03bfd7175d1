package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.Arg;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.compiler.ExecutionPlan.CommGroup;
import dev.kiln.compiler.ExecutionPlan.CommOp;
import dev.kiln.compiler.ExecutionPlan.CommunicatorSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.DeviceMemory;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.GpuActors.Gpu;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DeviceTensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.statistics.Statistics;
import net.jqwik.api.constraints.IntRange;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static dev.kiln.compiler.GpuActors.any;
import static dev.kiln.compiler.GpuActors.GIB;
import static dev.kiln.compiler.GpuActors.MIB;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Random GPU graphs, some with all-reduces, over random placements (JVMs, GPUs, actors without a GPU, scarce and
 * ample device memory): the compiled plan is valid and deterministic, and its schedule, simulated with blocking NCCL
 * semantics and channel slots, always completes.
 */
class GpuSchedulePropertyTest {

    private static final long[] FREE = {2 * MIB, 8 * MIB, 96 * MIB, 160 * MIB, 16 * GIB, 16 * GIB, 16 * GIB};
    private static final String[] PROCESSES = {"driver", "w1", "w2"};

    private enum Spread { MIXED, OWN_GPU, OWN_JVM }

    /** A random graph and topology, rebuilt identically from the seed. */
    private record Built(Node<?> output, Topology topology) {
    }

    /**
     * @param seed    the seed
     * @param spread  how actors are placed: {@code MIXED} (random JVMs, GPUs, none, free memory), {@code OWN_GPU}
     *                (one JVM, each actor on its own GPU with ample memory: every tensor edge between actors is
     *                NCCL) or {@code OWN_JVM} (each actor in its own JVM on its own GPU, with peer access: the same
     *                graph with CUDA IPC edges and no NCCL channel, so in bind order). All-reduces are over actors
     *                whose {@code MIXED} placements have distinct GPUs, so they are valid in every spread
     * @return the graph and topology
     */
    private static Built build(long seed, Spread spread) {
        Random rnd = new Random(seed);
        int actorCount = 2 + rnd.nextInt(5);
        List<ActorRef<Gpu>> actors = new ArrayList<>();
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        List<ActorRef<Gpu>> ownGpus = new ArrayList<>(); // actors whose MIXED placements use distinct GPUs
        Set<Integer> gpusTaken = new HashSet<>();
        for (int i = 0; i < actorCount; i++) {
            ActorRef<Gpu> actor = GpuActors.gpuActor(i + 1, "a" + i);
            actors.add(actor);
            String process = PROCESSES[rnd.nextInt(PROCESSES.length)];
            ActorPlacement mixed = rnd.nextInt(5) == 0 ? new ActorPlacement("localhost", process)
                    : new ActorPlacement("localhost", process, rnd.nextInt(4), FREE[rnd.nextInt(FREE.length)]);
            if (mixed.hasGpu() && gpusTaken.add(mixed.device())) {
                ownGpus.add(actor);
            }
            placements.put(actor.id(), switch (spread) {
                case MIXED -> mixed;
                case OWN_GPU -> new ActorPlacement("localhost", "driver", i, 16 * GIB);
                case OWN_JVM -> new ActorPlacement("localhost", "w" + i, i, 16 * GIB);
            });
        }
        InputNode<String> in = Graph.input();
        List<Node<DeviceTensor>> tensors = new ArrayList<>();
        List<Node<String>> strings = new ArrayList<>(List.of(in));
        List<Node<?>> calls = new ArrayList<>();
        Set<Node<?>> used = new HashSet<>();
        tensors.add(actors.get(rnd.nextInt(actorCount)).bind(Gpu::load, in));
        calls.add(tensors.getFirst());
        int callCount = 1 + rnd.nextInt(10);
        for (int i = 0; i < callCount; i++) {
            ActorRef<Gpu> actor = actors.get(rnd.nextInt(actorCount));
            if (rnd.nextInt(8) == 0 && ownGpus.size() >= 2) {
                // An all-reduce over 2 to 4 of them, each member's input computed on it from a random tensor;
                // only member 0's output must reach an output, the others may stay unread.
                List<ActorRef<Gpu>> members = new ArrayList<>(ownGpus);
                Collections.shuffle(members, rnd);
                members = members.subList(0, 2 + rnd.nextInt(Math.min(3, members.size() - 1)));
                List<Node<DeviceTensor>> inputs = new ArrayList<>();
                for (ActorRef<Gpu> m : members) {
                    inputs.add(m.bind(Gpu::f, any(pick(rnd, tensors, used))));
                }
                used.addAll(inputs);
                List<Node<DeviceTensor>> sums = Graph.allReduce(inputs);
                tensors.addAll(sums);
                calls.add(sums.getFirst());
                continue;
            }
            Node<?> call = switch (rnd.nextInt(7)) {
                case 0 -> addTensor(tensors, actor.bind(Gpu::load, pick(rnd, strings, used)));
                case 1 -> addTensor(tensors, actor.bind(Gpu::f, any(pick(rnd, tensors, used))));
                case 2 -> addTensor(tensors, actor.bind(Gpu::add, any(pick(rnd, tensors, used)), any(pick(rnd, tensors, used))));
                case 3 -> addTensor(tensors, actor.bind(Gpu::add3, any(pick(rnd, tensors, used)), any(pick(rnd, tensors, used)),
                        any(pick(rnd, tensors, used))));
                case 4 -> addString(strings, actor.bind(Gpu::toHost, any(pick(rnd, tensors, used))));
                case 5 -> addString(strings, actor.bind(Gpu::label, pick(rnd, strings, used)));
                default -> addTensor(tensors, actor.bind(Gpu::scale, any(pick(rnd, tensors, used)), pick(rnd, strings, used)));
            };
            if (rnd.nextInt(8) == 0 && spread == Spread.MIXED && call.method().returnType() == DeviceTensor.class) {
                call.withTransport(Transport.STAGED);
            }
            calls.add(call);
        }
        List<Node<?>> sinks = calls.stream().filter(n -> !used.contains(n)).toList();
        Node<?> output = sinks.size() == 1 && rnd.nextBoolean() ? sinks.getFirst()
                : Graph.outputs(sinks);
        return new Built(output, new Topology(ActorPlacement.IN_DRIVER, placements));
    }

    private static <T> Node<T> pick(Random rnd, List<Node<T>> from, Set<Node<?>> used) {
        Node<T> n = from.get(rnd.nextInt(from.size()));
        used.add(n);
        return n;
    }

    private static Node<DeviceTensor> addTensor(List<Node<DeviceTensor>> tensors, Node<DeviceTensor> n) {
        tensors.add(n);
        return n;
    }

    private static Node<String> addString(List<Node<String>> strings, Node<String> n) {
        strings.add(n);
        return n;
    }

    private static CompileOptions options(int inflight, int bufferChoice, int fractionChoice, boolean overlap) {
        long[] buffers = {64 << 10, MIB, 4 * MIB};
        double[] fractions = {0.5, 0.9, 1.0};
        return CompileOptions.defaults().maxInflight(inflight).bufferBytes(buffers[bufferChoice])
                .gpuMemoryFraction(fractions[fractionChoice]).overlapGpuCommunication(overlap);
    }

    @Property(tries = 400)
    void compiledGpuSchedulesAlwaysComplete(@ForAll long seed, @ForAll @IntRange(min = 1, max = 3) int inflight,
                                            @ForAll @IntRange(min = 0, max = 2) int buffer,
                                            @ForAll @IntRange(min = 0, max = 2) int fraction, @ForAll boolean overlap) {
        CompileOptions options = options(inflight, buffer, fraction, overlap);
        Built built = build(seed, Spread.MIXED);
        ExecutionPlan plan;
        try {
            plan = GraphCompiler.compile(built.output, built.topology, options);
        } catch (GraphCompileException e) {
            // The one refusal these placements allow: an all-reduce without room, which has no fallback.
            assertTrue(e.getMessage().contains(" does not fit: ") && e.getMessage().contains("an all-reduce has no "
                    + "fallback"), e::getMessage);
            Statistics.label("all-reduces").collect("did not fit");
            return;
        }
        Statistics.label("NCCL ranks").collect(plan.nccl().size());
        Statistics.label("all-reduces").collect(plan.collectives().size());
        checkPlan(plan, options);

        Built again = build(seed, Spread.MIXED);
        assertEquals(plan.toString(), GraphCompiler.compile(again.output, again.topology, options).toString(),
                "compiling is deterministic");
    }

    @Property(tries = 400)
    void ncclHeavySchedulesCompleteWhereBindOrderMayDeadlock(@ForAll long seed,
                                                             @ForAll @IntRange(min = 1, max = 3) int inflight,
                                                             @ForAll boolean overlap) {
        CompileOptions options = options(inflight, 1, 1, overlap);
        Built built = build(seed, Spread.OWN_GPU);
        ExecutionPlan plan = GraphCompiler.compile(built.output, built.topology, options);
        Statistics.label("NCCL ranks").collect(plan.nccl().size());
        Statistics.label("all-reduces").collect(plan.collectives().size());
        checkPlan(plan, options);

        // The same graph in bind order (no NCCL channel, no overlap: nothing moves) with this plan's NCCL channels.
        Built ownJvm = build(seed, Spread.OWN_JVM);
        ExecutionPlan baseline = GraphCompiler.compile(ownJvm.output, ownJvm.topology,
                options.overlapGpuCommunication(false));
        assertTrue(baseline.channels().stream().noneMatch(c -> c.transport() == Transport.NCCL), baseline::toString);
        for (ActorSchedule s : baseline.schedules()) {
            // Bind order: computes and all-reduces by node id (topological, which is bind, order).
            List<Integer> steps = s.ops().stream().filter(op -> op instanceof Compute || op instanceof AllReduce)
                    .map(op -> op instanceof Compute c ? c.node() : baseline.collectives()
                            .get(((AllReduce) op).collective()).nodes().get(((AllReduce) op).member())).toList();
            assertEquals(steps.stream().sorted().toList(), steps, () -> "not in bind order: " + baseline);
        }
        List<ActorSchedule> bindOrder = baseline.schedules();
        ExecutionPlan unordered = new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(),
                bindOrder, plan.outputs(), plan.multiOutput(), plan.devices(),
                NcclScheduler.schedule(bindOrder, plan.channels(), plan.collectives(), plan.communicators()),
                plan.communicators(), plan.collectives());
        String outcome;
        try {
            ScheduleChecker.simulate(unordered, 3);
            outcome = "completes";
        } catch (IllegalStateException e) {
            boolean deadlock = e.getMessage().startsWith("deadlock after ");
            assertTrue(deadlock || e.getMessage().endsWith("must issue matching sends and receives in the same order"),
                    e::getMessage);
            outcome = deadlock ? "deadlocks" : "a pair's orders differ";
        }
        Statistics.label("bind order").collect(outcome);
    }

    private static void checkPlan(ExecutionPlan plan, CompileOptions options) {
        long sendsPerExecution = plan.channels().stream().filter(c -> c.transport() == Transport.NCCL)
                .mapToLong(c -> c.readers().size()).sum();
        assertEquals(3 * (sendsPerExecution + plan.collectives().size()), ScheduleChecker.simulate(plan, 3),
                plan::toString);
        ScheduleChecker.checkPairOrder(plan.nccl());
        checkSchedules(plan);
        checkRanksOnDistinctGpus(plan);
        checkCollectives(plan);
        checkBudgets(plan, options);
    }

    /** Each all-reduce: its communicator's rank set is its member set, and every member issues it once per execution. */
    private static void checkCollectives(ExecutionPlan plan) {
        for (CollectiveSpec c : plan.collectives()) {
            CommunicatorSpec comm = plan.communicators().get(c.communicator());
            assertEquals(Set.copyOf(c.members()), Set.copyOf(comm.ranks()), plan::toString);
            for (int i = 0; i < c.members().size(); i++) {
                int rank = plan.nccl().rankOf(c.members().get(i));
                long steps = plan.nccl().groups().get(rank).stream().map(CommGroup::ops).flatMap(List::stream)
                        .filter(op -> op.kind() == CommOp.Kind.ALL_REDUCE && op.channel() == c.id()).count();
                assertEquals(1, steps, plan::toString);
                assertEquals("allreduce#" + c.id() + "[" + i + "]", plan.nodes().get(c.nodes().get(i)).label());
            }
        }
        List<Set<Integer>> rankSets = plan.communicators().stream().map(x -> Set.copyOf(x.ranks())).toList();
        assertEquals(rankSets.size(), new HashSet<>(rankSets).size(), () -> "two communicators with one rank set: " + plan);
    }

    /** Computes in bind order; a READ before the first COMPUTE using its local; a WRITE after its COMPUTE. */
    private static void checkSchedules(ExecutionPlan plan) {
        for (ActorSchedule s : plan.schedules()) {
            int lastNode = -1;
            Set<Integer> filled = new HashSet<>();
            for (Operation op : s.ops()) {
                switch (op) {
                    case Read r -> assertTrue(filled.add(r.local()), () -> "l" + r.local() + " filled twice in " + s);
                    case Compute c -> {
                        assertTrue(c.node() > lastNode, () -> "computes out of bind order in " + s);
                        lastNode = c.node();
                        for (Arg arg : c.args()) {
                            int local = arg instanceof LocalArg l ? l.local() : arg instanceof InputArg i ? i.local() : -1;
                            assertTrue(local < 0 || filled.contains(local), () -> "l" + local + " used before it is "
                                    + "filled in " + s);
                        }
                        filled.add(c.local());
                    }
                    case Write w -> assertTrue(filled.contains(w.local()), () -> "l" + w.local() + " written before "
                            + "it is computed in " + s);
                    case AllReduce r -> {
                        assertTrue(filled.contains(r.inputLocal()), () -> "l" + r.inputLocal() + " all-reduced before "
                                + "it is computed in " + s);
                        assertTrue(filled.add(r.local()), () -> "l" + r.local() + " filled twice in " + s);
                    }
                }
            }
        }
    }

    private static void checkRanksOnDistinctGpus(ExecutionPlan plan) {
        for (CommunicatorSpec comm : plan.communicators()) {
            Set<String> devices = new HashSet<>();
            for (int actor : comm.ranks()) {
                ActorPlacement p = placement(plan, actor);
                assertTrue(p.hasGpu(), p::toString);
                assertTrue(devices.add(p.host() + "/" + p.deviceUuid()), () -> "two ranks of comm" + comm.id() + " on "
                        + p + ": " + plan);
            }
        }
        for (ChannelSpec c : plan.channels()) {
            if (c.transport() == Transport.NCCL) {
                assertTrue(plan.nccl().rankOf(c.writer()) >= 0);
                c.readers().forEach(r -> assertNotEquals(-1, plan.nccl().rankOf(r)));
            }
        }
    }

    private static ActorPlacement placement(ExecutionPlan plan, int actor) {
        return plan.schedules().stream().filter(s -> s.actor() == actor).findFirst().orElseThrow().placement();
    }

    /**
     * Direct GPU edges, all-reduce buffers and NCCL's buffers never hold more than a device's budget; staging buffers
     * come on top. NCCL's part is recomputed here from the plan: per communicator rank, NCCL_RANK_BYTES plus
     * NCCL_PEER_BYTES per peer (point-to-point peers on communicator 0, ring neighbours of its collectives).
     */
    private static void checkBudgets(ExecutionPlan plan, CompileOptions options) {
        Map<String, Long> direct = new HashMap<>();
        Map<String, Long> staged = new HashMap<>();
        Map<String, Long> nccl = new HashMap<>();
        Map<Integer, ActorPlacement> where = new HashMap<>();
        plan.schedules().forEach(s -> where.put(s.actor(), s.placement()));
        where.put(ExecutionPlan.DRIVER, ActorPlacement.IN_DRIVER);
        for (ChannelSpec c : plan.channels()) {
            for (int r : c.readers()) {
                ActorPlacement p = where.get(r);
                if (!p.hasGpu()) {
                    continue;
                }
                String device = p.host() + "/" + p.deviceUuid();
                switch (c.transport()) {
                    case GPU_SAME_DEVICE, CUDA_IPC, NCCL -> direct.merge(device, c.slots() * c.slotBytes(), Long::sum);
                    case STAGED -> staged.merge(device, c.slotBytes(), Long::sum);
                    default -> { }
                }
            }
        }
        for (CollectiveSpec c : plan.collectives()) {
            for (int m : c.members()) {
                direct.merge(where.get(m).host() + "/" + where.get(m).deviceUuid(), options.bufferBytes(), Long::sum);
            }
        }
        for (CommunicatorSpec comm : plan.communicators()) {
            Map<Integer, Set<Integer>> peers = new HashMap<>();
            comm.ranks().forEach(r -> peers.put(r, new LinkedHashSet<>()));
            if (comm.id() == 0) {
                for (ChannelSpec c : plan.channels()) {
                    if (c.transport() == Transport.NCCL) {
                        for (int r : c.readers()) {
                            peers.get(c.writer()).add(r);
                            peers.get(r).add(c.writer());
                        }
                    }
                }
            }
            for (CollectiveSpec c : plan.collectives()) {
                if (c.communicator() == comm.id()) {
                    int n = c.members().size();
                    for (int i = 0; i < n; i++) {
                        Set<Integer> mine = peers.get(c.members().get(i));
                        mine.add(c.members().get((i + 1) % n));
                        mine.add(c.members().get((i + n - 1) % n));
                        mine.remove(c.members().get(i));
                    }
                }
            }
            peers.forEach((rank, ps) -> nccl.merge(where.get(rank).host() + "/" + where.get(rank).deviceUuid(),
                    CompileOptions.NCCL_RANK_BYTES + ps.size() * CompileOptions.NCCL_PEER_BYTES, Long::sum));
        }
        for (DeviceMemory d : plan.devices()) {
            String device = d.host() + "/" + d.uuid();
            long reserved = nccl.getOrDefault(device, 0L);
            long held = direct.getOrDefault(device, 0L) + reserved;
            assertEquals(reserved, d.ncclBytes(), () -> d + ": " + plan);
            assertTrue(held <= d.budgetBytes(), () -> d + " over budget: " + plan);
            assertEquals(held + staged.getOrDefault(device, 0L), d.heldBytes(), plan::toString);
            assertEquals((long) Math.floor(d.freeBytes() * options.gpuMemoryFraction()), d.budgetBytes());
        }
    }
}

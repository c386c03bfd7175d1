package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.Arg;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
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
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static dev.kiln.compiler.GpuActors.GIB;
import static dev.kiln.compiler.GpuActors.MIB;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Random GPU graphs over random placements (JVMs, GPUs, actors without a GPU, scarce and ample device memory):
 * the compiled plan is valid and deterministic, and its schedule, simulated with blocking NCCL semantics and
 * channel slots, always completes.
 */
class GpuSchedulePropertyTest {

    private static final long[] FREE = {2 * MIB, 8 * MIB, 64 * MIB, 16 * GIB};
    private static final String[] PROCESSES = {"driver", "w1", "w2"};

    private enum Spread { MIXED, OWN_GPU, ONE_GPU }

    /** A random graph and topology, rebuilt identically from the seed. */
    private record Built(Node<?> output, Topology topology) {
    }

    /**
     * @param seed    the seed
     * @param spread  how actors are placed: {@code MIXED} (random JVMs, GPUs, none, free memory), {@code OWN_GPU}
     *                (one JVM, each actor on its own GPU with ample memory: every tensor edge between actors is
     *                NCCL) or {@code ONE_GPU} (one JVM, one GPU: the same graph without NCCL, in bind order)
     * @return the graph and topology
     */
    private static Built build(long seed, Spread spread) {
        Random rnd = new Random(seed);
        int actorCount = 2 + rnd.nextInt(5);
        List<ActorRef<Gpu>> actors = new ArrayList<>();
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        for (int i = 0; i < actorCount; i++) {
            ActorRef<Gpu> actor = GpuActors.gpuActor(i + 1, "a" + i);
            actors.add(actor);
            String process = PROCESSES[rnd.nextInt(PROCESSES.length)];
            ActorPlacement mixed = rnd.nextInt(5) == 0 ? new ActorPlacement("localhost", process)
                    : new ActorPlacement("localhost", process, rnd.nextInt(4), FREE[rnd.nextInt(FREE.length)]);
            placements.put(actor.id(), switch (spread) {
                case MIXED -> mixed;
                case OWN_GPU -> new ActorPlacement("localhost", "driver", i, 16 * GIB);
                case ONE_GPU -> new ActorPlacement("localhost", "driver", 0, 16 * GIB);
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
            Node<?> call = switch (rnd.nextInt(7)) {
                case 0 -> addTensor(tensors, actor.bind(Gpu::load, pick(rnd, strings, used)));
                case 1 -> addTensor(tensors, actor.bind(Gpu::f, pick(rnd, tensors, used)));
                case 2 -> addTensor(tensors, actor.bind(Gpu::add, pick(rnd, tensors, used), pick(rnd, tensors, used)));
                case 3 -> addTensor(tensors, actor.bind(Gpu::add3, pick(rnd, tensors, used), pick(rnd, tensors, used),
                        pick(rnd, tensors, used)));
                case 4 -> addString(strings, actor.bind(Gpu::toHost, pick(rnd, tensors, used)));
                case 5 -> addString(strings, actor.bind(Gpu::label, pick(rnd, strings, used)));
                default -> addTensor(tensors, actor.bind(Gpu::scale, pick(rnd, tensors, used), pick(rnd, strings, used)));
            };
            if (rnd.nextInt(8) == 0 && spread == Spread.MIXED && call.method().returnType() == DeviceTensor.class) {
                call.withTransport(Transport.STAGED);
            }
            calls.add(call);
        }
        List<Node<?>> sinks = calls.stream().filter(n -> !used.contains(n)).toList();
        Node<?> output = sinks.size() == 1 && rnd.nextBoolean() ? sinks.getFirst()
                : Graph.outputs(sinks.toArray(Node<?>[]::new));
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
        ExecutionPlan plan = GraphCompiler.compile(built.output, built.topology, options);
        Statistics.label("NCCL ranks").collect(plan.nccl().size());
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
        checkPlan(plan, options);

        // The same graph in bind order (one GPU: no NCCL, no reordering) with this plan's NCCL channels.
        Built oneGpu = build(seed, Spread.ONE_GPU);
        List<ActorSchedule> bindOrder = GraphCompiler.compile(oneGpu.output, oneGpu.topology, options).schedules();
        ExecutionPlan unordered = new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(), plan.channels(),
                bindOrder, plan.outputs(), plan.multiOutput(), plan.devices(),
                NcclScheduler.schedule(bindOrder, plan.channels()));
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
        assertEquals(3 * sendsPerExecution, ScheduleChecker.simulate(plan, 3), plan::toString);
        ScheduleChecker.checkPairOrder(plan.nccl());
        checkSchedules(plan);
        checkRanksOnDistinctGpus(plan);
        checkBudgets(plan, options);
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
                }
            }
        }
    }

    private static void checkRanksOnDistinctGpus(ExecutionPlan plan) {
        Set<String> devices = new HashSet<>();
        for (int actor : plan.nccl().ranks()) {
            ActorPlacement p = plan.schedules().stream().filter(s -> s.actor() == actor).findFirst().orElseThrow()
                    .placement();
            assertTrue(p.hasGpu(), p::toString);
            assertTrue(devices.add(p.host() + "/" + p.device()), () -> "two ranks on " + p + ": " + plan);
        }
        for (ChannelSpec c : plan.channels()) {
            if (c.transport() == Transport.NCCL) {
                assertTrue(plan.nccl().rankOf(c.writer()) >= 0);
                c.readers().forEach(r -> assertNotEquals(-1, plan.nccl().rankOf(r)));
            }
        }
    }

    /** Direct GPU edges never hold more than a device's budget; staging buffers come on top. */
    private static void checkBudgets(ExecutionPlan plan, CompileOptions options) {
        Map<String, Long> direct = new HashMap<>();
        Map<String, Long> staged = new HashMap<>();
        Map<Integer, ActorPlacement> where = new HashMap<>();
        plan.schedules().forEach(s -> where.put(s.actor(), s.placement()));
        where.put(ExecutionPlan.DRIVER, ActorPlacement.IN_DRIVER);
        for (ChannelSpec c : plan.channels()) {
            for (int r : c.readers()) {
                ActorPlacement p = where.get(r);
                if (!p.hasGpu()) {
                    continue;
                }
                String device = p.host() + "/gpu" + p.device();
                switch (c.transport()) {
                    case GPU_SAME_DEVICE, CUDA_IPC, NCCL -> direct.merge(device, c.slots() * c.slotBytes(), Long::sum);
                    case STAGED -> staged.merge(device, c.slotBytes(), Long::sum);
                    default -> { }
                }
            }
        }
        for (DeviceMemory d : plan.devices()) {
            long held = direct.getOrDefault(d.name(), 0L);
            assertTrue(held <= d.budgetBytes(), () -> d + " over budget: " + plan);
            assertEquals(held + staged.getOrDefault(d.name(), 0L), d.heldBytes(), plan::toString);
            assertEquals((long) Math.floor(d.freeBytes() * options.gpuMemoryFraction()), d.budgetBytes());
        }
    }
}

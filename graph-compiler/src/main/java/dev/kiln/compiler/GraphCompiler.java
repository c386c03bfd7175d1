package dev.kiln.compiler;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.Arg;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.CollectiveSpec;
import dev.kiln.compiler.ExecutionPlan.CommunicatorSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.ConstantArg;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.NodeSpec;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Node;
import dev.kiln.graph.Transport;
import dev.kiln.graph.Tuple2;
import dev.kiln.graph.Tuple3;
import dev.kiln.graph.Tuple4;
import dev.kiln.graph.Tuple5;
import dev.kiln.graph.Tuple6;
import dev.kiln.graph.Tuple7;
import dev.kiln.graph.Tuple8;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;

import java.lang.reflect.Modifier;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.TreeSet;

/**
 * Turns a graph into an {@link ExecutionPlan}: validation, topological order, one channel per
 * value that crosses actors, one READ / COMPUTE / ALLREDUCE / WRITE schedule per actor in bind order,
 * transport resolution. A value whose method is declared to return {@code DeviceTensor}, or an
 * all-reduce output, makes a GPU edge, resolved against the GPUs, peer access and free device memory
 * of the topology and {@link CompileOptions#gpuMemoryFraction()}. All-reduces ({@code Graph.allReduce})
 * are checked, numbered in topological order and given a communicator. When some edge uses NCCL or the
 * graph has an all-reduce, the schedules are reordered so that NCCL operations cannot deadlock, and the
 * plan carries each rank's groups. Last, actors of one JVM beyond {@link CompileOptions#actorThreads()} (by
 * default, beyond the JVM's cores) are put to share threads ({@link ExecutionPlan.ActorSchedule#carrier()}).
 * A pure function of (graph, topology, options): it starts no thread,
 * opens no channel and changes no node. Thread-safe.
 */
public final class GraphCompiler {

    private GraphCompiler() {
    }

    /**
     * Compiles the graph that ends in {@code output}.
     *
     * @param output   the result node, or a {@code Graph.outputs(...)} node for several results
     * @param topology where the runtime's actors live
     * @param options  compile options
     * @return the plan
     * @throws GraphCompileException naming the node at fault and the fix
     */
    public static ExecutionPlan compile(Node<?> output, Topology topology, CompileOptions options) {
        return new Run(output, null, topology, options).plan();
    }

    /**
     * Compiles again, for another topology, the graph that {@code owner} compiled: its nodes are claimed by
     * {@code owner} (and by no other graph). A graph that restarts after an actor died does this when the actor was
     * recreated on another host or GPU ({@link ActorDeathPolicy#RESTART}).
     *
     * @param output   the graph's result node, as first compiled
     * @param owner    the compiled graph that claimed the nodes
     * @param topology where the runtime's actors live now
     * @param options  the graph's compile options
     * @return the plan for the new topology
     * @throws GraphCompileException naming the node at fault and the fix (a node claimed by another graph, a type
     *                               the new placement cannot carry)
     */
    public static ExecutionPlan recompile(Node<?> output, Object owner, Topology topology, CompileOptions options) {
        return new Run(output, java.util.Objects.requireNonNull(owner, "owner"), topology, options).plan();
    }

    /**
     * Builds the result of a graph compiled on {@code Graph.outputs(...)} from its outputs' values, for the runtime
     * that executes it: a {@link Tuple2} to {@link Tuple4} for {@code Graph.outputs(a, b, ...)}, an unmodifiable
     * {@code List} for {@code Graph.outputs(List)}. Allocates the result and nothing else.
     *
     * @param root   the graph's output node, of kind {@link Node.Kind#OUTPUTS} or {@link Node.Kind#OUTPUT_LIST}
     * @param values the outputs' values, in the order they were listed; a list result wraps this array, so do not
     *               reuse it
     * @return the execution's result
     * @throws IllegalArgumentException if {@code root} is not a multi-output node, or {@code values} does not have
     *                                  one value per output
     */
    public static Object outputValue(Node<?> root, Object[] values) {
        if (values.length != root.args().size()) {
            throw new IllegalArgumentException(root + " has " + root.args().size() + " outputs, got " + values.length
                    + " values");
        }
        return switch (root.kind()) {
            case OUTPUT_LIST -> java.util.Collections.unmodifiableList(java.util.Arrays.asList(values));
            case OUTPUTS -> switch (values.length) {
                case 2 -> new Tuple2<>(values[0], values[1]);
                case 3 -> new Tuple3<>(values[0], values[1], values[2]);
                case 4 -> new Tuple4<>(values[0], values[1], values[2], values[3]);
                default -> throw new IllegalArgumentException(root + " has " + values.length + " outputs; a tuple "
                        + "has 2 to 4");
            };
            default -> throw new IllegalArgumentException(root + " is not a Graph.outputs(...) node");
        };
    }

    /**
     * Lays out the input of one execution as the plan's {@code InputArg}s read it, for the runtime that executes
     * it: a tuple input ({@code Graph.input2()} to {@code input8()}) whose components the graph reads becomes an
     * {@code Object[]} of its components, any other input stays as it is. Allocates that array and nothing else.
     *
     * @param plan  the graph's plan
     * @param input the value passed to {@code execute}
     * @return the input record
     * @throws NullPointerException     if the graph reads a tuple's components and {@code input} is null
     * @throws IllegalArgumentException if the graph reads a tuple's components and {@code input} is not a tuple of
     *                                  the plan's arity (possible only through an unchecked cast)
     */
    public static Object inputRecord(ExecutionPlan plan, Object input) {
        int arity = plan.inputArity();
        if (arity <= 1) {
            return input;
        }
        Object[] record = switch (input) {
            case Tuple2<?, ?> t -> new Object[] {t.first(), t.second()};
            case Tuple3<?, ?, ?> t -> new Object[] {t.first(), t.second(), t.third()};
            case Tuple4<?, ?, ?, ?> t -> new Object[] {t.first(), t.second(), t.third(), t.fourth()};
            case Tuple5<?, ?, ?, ?, ?> t -> new Object[] {t.first(), t.second(), t.third(), t.fourth(), t.fifth()};
            case Tuple6<?, ?, ?, ?, ?, ?> t -> new Object[] {t.first(), t.second(), t.third(), t.fourth(), t.fifth(),
                t.sixth()};
            case Tuple7<?, ?, ?, ?, ?, ?, ?> t -> new Object[] {t.first(), t.second(), t.third(), t.fourth(),
                t.fifth(), t.sixth(), t.seventh()};
            case Tuple8<?, ?, ?, ?, ?, ?, ?, ?> t -> new Object[] {t.first(), t.second(), t.third(), t.fourth(),
                t.fifth(), t.sixth(), t.seventh(), t.eighth()};
            case null -> throw new NullPointerException("the graph takes a Tuple" + arity + " of its arguments, "
                    + "execute got null");
            default -> null;
        };
        if (record == null || record.length != arity) {
            throw new IllegalArgumentException("the graph takes a Tuple" + arity + " of its arguments, execute got a "
                    + input.getClass().getName());
        }
        return record;
    }

    /** {@return whether {@code n} is a {@code Graph.outputs(...)} node} */
    private static boolean isOutputs(Node<?> n) {
        return n.kind() == Node.Kind.OUTPUTS || n.kind() == Node.Kind.OUTPUT_LIST;
    }

    /** The state of one compilation. */
    private static final class Run {
        private final Topology topology;
        private final CompileOptions options;
        private final boolean multiOutput;
        private final List<Node<?>> outputs = new ArrayList<>();
        private final List<Node<?>> order;
        private final Map<Node<?>, Integer> ids = new IdentityHashMap<>();
        /** Each all-reduce's outputs in member order, by collective id (topological order of their first output). */
        private final List<List<Node<?>>> collectives = new ArrayList<>();
        /** Collective id by an all-reduce's first output. */
        private final Map<Node<?>, Integer> collectiveIds = new IdentityHashMap<>();

        /** @param owner the graph whose nodes these are, when compiling again; null for a first compile */
        Run(Node<?> root, Object owner, Topology topology, CompileOptions options) {
            if (root == null) {
                throw new NullPointerException("output");
            }
            this.topology = topology;
            this.options = options;
            this.multiOutput = isOutputs(root);
            if (multiOutput) {
                root.args().forEach(a -> outputs.add((Node<?>) a));
            } else {
                outputs.add(root);
            }
            for (Node<?> out : outputs) {
                if (!onActor(out)) {
                    throw new GraphCompileException(out.label(), "an output must be an actor method call; "
                            + (isOutputs(out) ? "do not nest Graph.outputs(...)"
                            : "bind a method on the input instead of returning it"));
                }
            }
            Set<Node<?>> reachable = backwardClosure();
            checkSingleInput(reachable, root);
            checkNotCompiled(reachable, root, owner);
            checkDangling(reachable, root);
            this.order = topologicalOrder(reachable);
            for (int i = 0; i < order.size(); i++) {
                ids.put(order.get(i), i);
                Node<?> n = order.get(i);
                if (n.kind() == Node.Kind.ALL_REDUCE && collectiveIds.putIfAbsent(n.collective().getFirst(),
                        collectives.size()) == null) {
                    collectives.add(n.collective());
                }
            }
        }

        /** @return the node's label, {@code allreduce#k[i]} for member i's output of collective k */
        private String label(Node<?> n) {
            return n.kind() == Node.Kind.ALL_REDUCE
                    ? "allreduce#" + collectiveIds.get(n.collective().getFirst()) + "[" + n.member() + "]" : n.label();
        }

        /** @return the collective id of an all-reduce output */
        private int collectiveOf(Node<?> n) {
            return collectiveIds.get(n.collective().getFirst());
        }

        private Set<Node<?>> backwardClosure() {
            Set<Node<?>> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
            ArrayDeque<Node<?>> work = new ArrayDeque<>(outputs);
            while (!work.isEmpty()) {
                Node<?> n = work.pop();
                if (!seen.add(n)) {
                    continue;
                }
                if (n.kind() == Node.Kind.ALL_REDUCE) {
                    work.addAll(n.collective()); // every member takes part, whichever output is used
                }
                for (Object arg : n.args()) {
                    if (arg instanceof Node<?> up) {
                        if (isOutputs(up)) {
                            throw new GraphCompileException(n.label(), "Graph.outputs(...) cannot be a method argument; "
                                    + "pass the individual nodes");
                        }
                        work.push(up);
                    }
                }
            }
            return seen;
        }

        private static void checkSingleInput(Set<Node<?>> nodes, Node<?> root) {
            Object input = null;
            for (Node<?> n : nodes) {
                if (n.input() != null) {
                    if (input != null && input != n.input()) {
                        throw new GraphCompileException(root.label(), "the graph reads two different Graph.input() nodes; "
                                + "a graph has one input: use Graph.input2() to input8() for several arguments");
                    }
                    input = n.input();
                }
            }
        }

        private static void checkNotCompiled(Set<Node<?>> nodes, Node<?> root, Object owner) {
            for (Node<?> n : concat(nodes, root)) {
                if (n.compiledBy() != null && n.compiledBy() != owner) {
                    throw new GraphCompileException(n.label(), "this node is part of a graph that was already compiled ("
                            + n.compiledBy() + "); a node can be compiled once: bind the calls again to build a new graph");
                }
            }
        }

        private static void checkDangling(Set<Node<?>> reachable, Node<?> root) {
            ArrayDeque<Node<?>> work = new ArrayDeque<>(reachable);
            Set<Node<?>> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
            while (!work.isEmpty()) {
                for (Node<?> down : work.pop().downstream()) {
                    if (down == root || !seen.add(down)) {
                        continue;
                    }
                    if (!reachable.contains(down) && down.kind() == Node.Kind.CALL) {
                        throw new GraphCompileException(down.label(), "this call does not reach an output: its result is "
                                + "never used; pass it to Graph.outputs(...) or use it as an argument, or do not bind it");
                    }
                    if (!reachable.contains(down) && down.kind() == Node.Kind.ALL_REDUCE) {
                        throw new GraphCompileException(down.collective().getFirst().label(), "this all-reduce (of "
                                + String.join(", ",
                                down.collective().stream().map(o -> ((Node<?>) o.args().getFirst()).label()).toList())
                                + ") does not reach an output: none of its results is used; pass one to "
                                + "Graph.outputs(...) or use it as an argument, or do not build the all-reduce");
                    }
                    work.push(down);
                }
            }
        }

        private static List<Node<?>> topologicalOrder(Set<Node<?>> nodes) {
            Map<Node<?>, Integer> indegree = new IdentityHashMap<>();
            Map<Node<?>, List<Node<?>>> users = new IdentityHashMap<>();
            for (Node<?> n : nodes) {
                indegree.putIfAbsent(n, 0);
                Set<Node<?>> ups = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
                for (Object arg : n.args()) {
                    if (arg instanceof Node<?> up && ups.add(up)) {
                        indegree.merge(n, 1, Integer::sum);
                        users.computeIfAbsent(up, k -> new ArrayList<>()).add(n);
                    }
                }
            }
            PriorityQueue<Node<?>> ready = new PriorityQueue<>(Comparator.comparingLong(Node::serial));
            indegree.forEach((n, d) -> {
                if (d == 0) {
                    ready.add(n);
                }
            });
            List<Node<?>> order = new ArrayList<>(nodes.size());
            while (!ready.isEmpty()) {
                Node<?> n = ready.poll();
                order.add(n);
                for (Node<?> user : users.getOrDefault(n, List.of())) {
                    if (indegree.merge(user, -1, Integer::sum) == 0) {
                        ready.add(user);
                    }
                }
            }
            return order;
        }

        ExecutionPlan plan() {
            Map<Integer, ActorRef<?>> actors = new LinkedHashMap<>();
            for (Node<?> n : order) {
                if (n.kind() == Node.Kind.CALL) {
                    ActorRef<?> a = n.actor();
                    ActorRef<?> seen = actors.putIfAbsent(a.id(), a);
                    if (seen != null && seen != a) {
                        throw new GraphCompileException(n.label(), "actors of two different runtimes in one graph ("
                                + seen.owner() + " and " + a.owner() + "); create all actors with the same Kiln");
                    }
                    if (!topology.actors().containsKey(a.id())) {
                        throw new GraphCompileException(n.label(), "actor " + a.name() + " is not hosted by the runtime "
                                + "that compiles this graph: its Kiln was closed or it belongs to another Kiln; "
                                + "create the actor with this Kiln");
                    }
                    checkArgumentTypes(n);
                }
            }
            checkCollectives();
            int inputArity = inputArity();
            List<NodeSpec> nodeSpecs = new ArrayList<>();
            for (Node<?> n : order) {
                List<Integer> ups = new ArrayList<>();
                for (Object arg : n.args()) {
                    if (arg instanceof Node<?> up) {
                        ups.add(ids.get(up));
                    }
                }
                if (n.kind() == Node.Kind.INPUT_ARG) {
                    ups.clear(); // an argument is part of the input, not computed from it
                }
                nodeSpecs.add(new NodeSpec(ids.get(n), label(n), writerOf(n), ups));
            }
            return new Layout(actors).build(inputArity, nodeSpecs);
        }

        /** Every all-reduce: at least 2 inputs, each a device tensor an actor computes, on distinct actors. */
        private void checkCollectives() {
            for (int k = 0; k < collectives.size(); k++) {
                List<Node<?>> outs = collectives.get(k);
                if (outs.size() < 2) {
                    throw new GraphCompileException(label(outs.getFirst()), "an all-reduce needs at least 2 inputs, got "
                            + "1 (" + ((Node<?>) outs.getFirst().args().getFirst()).label() + "); pass the tensor of "
                            + "every member to one Graph.allReduce call, or use the input itself");
                }
                for (int i = 0; i < outs.size(); i++) {
                    Node<?> in = (Node<?>) outs.get(i).args().getFirst();
                    String where = "input " + i + " of allreduce#" + k;
                    if (in.kind() == Node.Kind.INPUT || in.kind() == Node.Kind.INPUT_ARG) {
                        throw new GraphCompileException(label(outs.get(i)), where + " is the graph's " + in.label()
                                + ", which the driver passes and no actor computes; an all-reduce sums device tensors "
                                + "of actors: bind an actor method declared to return " + DeviceTensor.class.getName()
                                + " and pass its node");
                    }
                    if (in.kind() == Node.Kind.CALL && in.method().returnType() != DeviceTensor.class) {
                        throw new GraphCompileException(label(outs.get(i)), where + " is " + in.label() + ", declared "
                                + "to return " + in.method().returnType().getName() + "; an all-reduce sums device "
                                + "tensors: pass a node whose method is declared to return "
                                + DeviceTensor.class.getName());
                    }
                    for (int j = 0; j < i; j++) {
                        Node<?> other = (Node<?>) outs.get(j).args().getFirst();
                        if (other.actor().id() == in.actor().id()) {
                            throw new GraphCompileException(label(outs.get(i)), "inputs " + j + " and " + i + " of allreduce#"
                                    + k + " (" + label(other) + " and " + label(in) + ") are both on actor "
                                    + in.actor().name() + "; an all-reduce has one member per actor: compute each "
                                    + "input on a different actor");
                        }
                    }
                }
            }
        }

        /**
         * {@return how the input record is laid out: 0 when no call reads the input, 1 for a one-argument input, the
         *          tuple's arity (2 to 8) when a call reads a component of a tuple input}
         */
        private int inputArity() {
            InputNode<?> input = null;
            boolean componentRead = false;
            for (Node<?> n : order) {
                if (n.kind() == Node.Kind.INPUT) {
                    input = (InputNode<?>) n;
                    if (input.arity() > 1 && order.stream().anyMatch(d -> d.kind() == Node.Kind.CALL
                            && d.args().contains(n))) {
                        throw new GraphCompileException("input", "a call takes the whole Tuple" + input.arity()
                                + " input; bind its components (first(), second(), ...) instead, or build the graph on "
                                + "Graph.input() to pass one value");
                    }
                } else if (n.kind() == Node.Kind.INPUT_ARG) {
                    componentRead = true;
                }
            }
            if (input == null) {
                return 0;
            }
            if (input.arity() > 1) {
                return componentRead ? input.arity() : 0;
            }
            Node<?> whole = input;
            return order.stream().anyMatch(d -> d.kind() == Node.Kind.CALL && d.args().contains(whole)) ? 1 : 0;
        }

        private void checkArgumentTypes(Node<?> call) {
            MethodRef m = call.method();
            for (int i = 0; i < m.arity(); i++) {
                Object arg = call.args().get(i);
                Class<?> param = m.parameterTypes().get(i);
                String where = "argument " + (i + 1) + " of " + m.displayName();
                if (arg == null) {
                    if (m.primitive().get(i)) {
                        throw new GraphCompileException(call.label(), where + " is a primitive " + primitiveName(param)
                                + " but the constant passed is null; pass a value");
                    }
                    continue;
                }
                Class<?> given;
                String source;
                boolean fits;
                if (arg instanceof Node<?> up) {
                    if (up.kind() != Node.Kind.CALL && up.kind() != Node.Kind.ALL_REDUCE) {
                        continue; // input values are only known at execute time
                    }
                    given = up.kind() == Node.Kind.CALL ? up.method().returnType() : DeviceTensor.class;
                    source = "upstream " + label(up) + " returns ";
                    ActorPlacement reader = topology.actors().get(call.actor().id());
                    if (given == DeviceTensor.class && up.actor() != call.actor() && reader != null && !reader.hasGpu()) {
                        // A GPU edge to an actor without a GPU is staged: the actor gets the host copy.
                        given = Tensor.class;
                        source = "upstream " + label(up) + " returns a DeviceTensor, which " + call.actor().name()
                                + " (no GPU) receives as a host ";
                    }
                    fits = castable(given, param);
                } else {
                    given = arg.getClass();
                    source = "the constant passed is a ";
                    fits = param.isInstance(arg); // a constant's class is exact, not a static type
                }
                if (!fits) {
                    throw new GraphCompileException(call.label(), where + " takes " + param.getName() + " but "
                            + source + given.getName() + "; bind a node of a matching type or change the parameter");
                }
            }
        }

        private int writerOf(Node<?> n) {
            return onActor(n) ? n.actor().id() : ExecutionPlan.DRIVER;
        }

        /** @return whether an actor computes the node: a call, or an all-reduce output */
        private static boolean onActor(Node<?> n) {
            return n.kind() == Node.Kind.CALL || n.kind() == Node.Kind.ALL_REDUCE;
        }

        /** Allocates channels and locals and lays out each actor's schedule. */
        private final class Layout {
            private final Map<Integer, ActorRef<?>> actors;
            private final Map<Integer, List<Node<?>>> byActor = new LinkedHashMap<>();
            private final Map<Integer, Integer> channelOfNode = new HashMap<>();
            private final List<TreeSet<Integer>> readers = new ArrayList<>();
            private final List<Integer> channelNode = new ArrayList<>();
            private final List<Integer> channelWriter = new ArrayList<>();
            private final Map<Integer, List<Object>> pending = new LinkedHashMap<>();
            private final Map<Integer, Integer> frames = new HashMap<>();

            Layout(Map<Integer, ActorRef<?>> actors) {
                this.actors = actors;
                for (int id : actors.keySet()) {
                    byActor.put(id, new ArrayList<>());
                }
                for (Node<?> n : order) {
                    if (onActor(n)) {
                        byActor.get(n.actor().id()).add(n);
                    }
                }
                // Channel 0 carries the input record, whatever part of it an actor uses.
                newChannel(inputNodeId(), ExecutionPlan.DRIVER);
                for (Node<?> n : order) {
                    if (onActor(n) && crossesActors(n)) {
                        channelOfNode.put(ids.get(n), newChannel(ids.get(n), n.actor().id()));
                    }
                }
            }

            private int inputNodeId() {
                for (Node<?> n : order) {
                    if (n.kind() == Node.Kind.INPUT) {
                        return ids.get(n);
                    }
                }
                return -1; // a graph on constants only: the channel just starts each execution
            }

            private int newChannel(int node, int writer) {
                channelNode.add(node);
                channelWriter.add(writer);
                readers.add(new TreeSet<>(Comparator.comparingInt(this::participantRank)));
                return readers.size() - 1;
            }

            private int participantRank(int participant) {
                if (participant == ExecutionPlan.DRIVER) {
                    return Integer.MAX_VALUE;
                }
                int rank = 0;
                for (int id : actors.keySet()) {
                    if (id == participant) {
                        return rank;
                    }
                    rank++;
                }
                throw new IllegalStateException("unknown participant " + participant);
            }

            private boolean crossesActors(Node<?> n) {
                if (outputs.contains(n)) {
                    return true;
                }
                for (Node<?> d : order) {
                    if (d.kind() == Node.Kind.CALL && d.actor().id() != n.actor().id() && d.args().contains(n)) {
                        return true;
                    }
                }
                return false;
            }

            ExecutionPlan build(int inputArity, List<NodeSpec> nodeSpecs) {
                for (var e : byActor.entrySet()) {
                    pending.put(e.getKey(), layoutActor(e.getKey(), e.getValue()));
                }
                List<OutputRead> outputReads = new ArrayList<>();
                for (Node<?> out : outputs) {
                    readers.get(channelOfNode.get(ids.get(out))).add(ExecutionPlan.DRIVER);
                }
                for (Node<?> out : outputs) {
                    int c = channelOfNode.get(ids.get(out));
                    outputReads.add(new OutputRead(c, indexIn(c, ExecutionPlan.DRIVER)));
                }
                List<ActorSchedule> schedules = new ArrayList<>();
                for (var e : pending.entrySet()) {
                    int actor = e.getKey();
                    List<Operation> ops = new ArrayList<>();
                    for (Object op : e.getValue()) {
                        ops.add(op instanceof PendingRead r ? new Read(r.channel, indexIn(r.channel, actor), r.local)
                                : (Operation) op);
                    }
                    schedules.add(new ActorSchedule(actor, actors.get(actor).name(), topology.actors().get(actor),
                            frames.get(actor), ops));
                }
                List<Integer> participants = new ArrayList<>(actors.keySet());
                participants.add(ExecutionPlan.DRIVER);
                GpuPlanner gpu = new GpuPlanner(options, topology.peerAccess(), participants, this::placement,
                        this::name);
                List<List<Integer>> members = new ArrayList<>();
                for (int k = 0; k < collectives.size(); k++) {
                    List<Node<?>> outs = collectives.get(k);
                    members.add(outs.stream().map(o -> o.actor().id()).toList());
                    gpu.collective(k, members.get(k), i -> label(outs.get(i)));
                }
                List<ChannelSpec> channels = new ArrayList<>();
                for (int c = 0; c < readers.size(); c++) {
                    List<Integer> rs = List.copyOf(readers.get(c));
                    Node<?> node = channelNode.get(c) >= 0 ? order.get(channelNode.get(c)) : null;
                    Transport asked = node == null ? Transport.AUTO : node.transport();
                    String label = node == null ? "input" : label(node);
                    boolean gpuEdge = node != null && (node.kind() == Node.Kind.ALL_REDUCE
                            || node.kind() == Node.Kind.CALL && node.method().returnType() == DeviceTensor.class);
                    channels.add(gpuEdge ? gpu.resolve(c, channelNode.get(c), channelWriter.get(c), rs, asked, label)
                            : resolve(c, channelNode.get(c), channelWriter.get(c), rs, asked, label, node));
                }
                schedules = NcclScheduler.order(schedules, channels, options.overlapGpuCommunication());
                schedules = ThreadPlanner.share(schedules, channels, topology, options);
                List<CommunicatorSpec> communicators = NcclScheduler.communicators(schedules, channels, members);
                List<CollectiveSpec> collectiveSpecs = new ArrayList<>();
                for (int k = 0; k < collectives.size(); k++) {
                    collectiveSpecs.add(new CollectiveSpec(k, members.get(k),
                            NcclScheduler.communicatorOf(communicators, members.get(k)),
                            collectives.get(k).stream().map(ids::get).toList()));
                }
                return new ExecutionPlan(inputArity, options.maxInflight(), nodeSpecs, channels, schedules,
                        outputReads, multiOutput, gpu.devices(),
                        NcclScheduler.schedule(schedules, channels, collectiveSpecs, communicators), communicators,
                        collectiveSpecs);
            }

            private String name(int participant) {
                return participant == ExecutionPlan.DRIVER ? "driver" : actors.get(participant).name();
            }

            private int indexIn(int channel, int participant) {
                int i = 0;
                for (int r : readers.get(channel)) {
                    if (r == participant) {
                        return i;
                    }
                    i++;
                }
                throw new IllegalStateException("participant " + participant + " does not read c" + channel);
            }

            /** Lays out one actor's operations; reads stay pending until every channel's readers are known. */
            private List<Object> layoutActor(int actor, List<Node<?>> calls) {
                List<Object> ops = new ArrayList<>();
                Map<Integer, Integer> localOfChannel = new HashMap<>();
                Map<Node<?>, Integer> localOfNode = new IdentityHashMap<>();
                int[] next = {0};
                for (Node<?> call : calls) {
                    if (call.kind() == Node.Kind.ALL_REDUCE) {
                        int local = next[0]++;
                        ops.add(new AllReduce(collectiveOf(call), call.member(),
                                localOfNode.get((Node<?>) call.args().getFirst()), local));
                        localOfNode.put(call, local);
                        Integer channel = channelOfNode.get(ids.get(call));
                        if (channel != null) {
                            ops.add(new Write(channel, local));
                        }
                        continue;
                    }
                    List<Arg> args = new ArrayList<>();
                    for (Object a : call.args()) {
                        if (!(a instanceof Node<?> up)) {
                            args.add(new ConstantArg(a));
                        } else if (up.kind() == Node.Kind.INPUT || up.kind() == Node.Kind.INPUT_ARG) {
                            int local = readChannel(actor, ExecutionPlan.INPUT_CHANNEL, ops, localOfChannel, next);
                            args.add(new InputArg(local, Math.max(up.argIndex(), 0)));
                        } else if (up.actor().id() == actor) {
                            args.add(new LocalArg(localOfNode.get(up)));
                        } else {
                            int local = readChannel(actor, channelOfNode.get(ids.get(up)), ops, localOfChannel, next);
                            args.add(new LocalArg(local));
                        }
                    }
                    if (ops.isEmpty()) {
                        // Nothing to wait for: wait for the execution's input so the call runs once per execute().
                        readChannel(actor, ExecutionPlan.INPUT_CHANNEL, ops, localOfChannel, next);
                    }
                    int local = next[0]++;
                    localOfNode.put(call, local);
                    ops.add(new Compute(ids.get(call), call.method(), args, local));
                    Integer channel = channelOfNode.get(ids.get(call));
                    if (channel != null) {
                        ops.add(new Write(channel, local));
                    }
                }
                frames.put(actor, next[0]);
                return ops;
            }

            private int readChannel(int actor, int channel, List<Object> ops, Map<Integer, Integer> localOfChannel,
                                    int[] next) {
                Integer local = localOfChannel.get(channel);
                if (local == null) {
                    local = next[0]++;
                    localOfChannel.put(channel, local);
                    readers.get(channel).add(actor);
                    ops.add(new PendingRead(channel, local));
                }
                return local;
            }

            private ChannelSpec resolve(int id, int node, int writer, List<Integer> rs, Transport asked, String label,
                                        Node<?> source) {
                ActorPlacement from = placement(writer);
                boolean oneProcess = true;
                boolean oneHost = true;
                ActorPlacement elsewhere = null;
                for (int r : rs) {
                    ActorPlacement to = placement(r);
                    if (!from.host().equals(to.host()) && elsewhere == null) {
                        elsewhere = to;
                    }
                    oneHost &= from.host().equals(to.host());
                    oneProcess &= from.sameProcess(to);
                }
                Transport transport;
                String reason;
                switch (asked) {
                    case AUTO -> {
                        transport = oneProcess ? Transport.IN_PROCESS : oneHost ? Transport.SHARED_MEMORY
                                : Transport.AERON_UDP;
                        reason = oneProcess ? "AUTO: writer and readers in one JVM"
                                : oneHost ? "AUTO: writer and readers in different JVMs on " + from.host()
                                : "AUTO: " + elsewhere + " is on another host than the writer (" + from.host() + ")";
                    }
                    case IN_PROCESS -> {
                        if (!oneProcess) {
                            throw new GraphCompileException(label, "Transport.IN_PROCESS was asked for, but the value "
                                    + "goes from " + from + " to " + participants(rs) + ", other JVMs; use Transport.AUTO "
                                    + "(shared memory between JVMs of one host, Aeron UDP between hosts)");
                        }
                        transport = Transport.IN_PROCESS;
                        reason = "asked; one JVM";
                    }
                    case SHARED_MEMORY -> {
                        if (!oneHost) {
                            throw new GraphCompileException(label, "Transport.SHARED_MEMORY was asked for, but the "
                                    + "value goes from " + from + " to " + elsewhere + ", another host; use Transport.AUTO "
                                    + "or AERON_UDP");
                        }
                        transport = Transport.SHARED_MEMORY;
                        reason = oneProcess ? "asked; one JVM" : "asked; different JVMs on " + from.host();
                    }
                    case AERON_UDP -> {
                        transport = Transport.AERON_UDP;
                        reason = oneHost ? "asked; one host (" + from.host() + ")" : "asked; different hosts";
                    }
                    default -> throw new GraphCompileException(label, "Transport." + asked // a GPU transport
                            + " carries DeviceTensor values, but " + (source.kind() == Node.Kind.CALL
                            ? label + " is declared to return " + source.method().returnType().getName()
                            + "; declare it to return " + DeviceTensor.class.getName() + ", or use "
                            : "the graph's input is a host value; use ") + "Transport.AUTO, IN_PROCESS, SHARED_MEMORY "
                            + "or AERON_UDP");
                }
                return new ChannelSpec(id, node, writer, rs, options.maxInflight(), options.bufferBytes(), transport,
                        reason);
            }

            private String participants(List<Integer> rs) {
                return rs.stream().map(r -> placement(r).toString()).distinct().toList().toString();
            }

            private ActorPlacement placement(int participant) {
                return participant == ExecutionPlan.DRIVER ? topology.driverProcess() : topology.actors().get(participant);
            }
        }

        private record PendingRead(int channel, int local) {
        }
    }

    /**
     * Whether a value of static type {@code given} may be passed where {@code param} is expected:
     * true unless no value can be both (unrelated classes, or a final class and an interface
     * it does not implement). Generic methods erase to {@code Object}, which passes.
     */
    static boolean castable(Class<?> given, Class<?> param) {
        Class<?> a = MethodRef.box(given);
        Class<?> b = MethodRef.box(param);
        if (a == Void.class) {
            return false;
        }
        if (b.isAssignableFrom(a) || a.isAssignableFrom(b)) {
            return true;
        }
        if (a.isInterface() && b.isInterface()) {
            return true;
        }
        if (a.isInterface()) {
            return !Modifier.isFinal(b.getModifiers()) && !b.isArray();
        }
        if (b.isInterface()) {
            return !Modifier.isFinal(a.getModifiers()) && !a.isArray();
        }
        return false;
    }

    private static String primitiveName(Class<?> boxed) {
        return java.lang.invoke.MethodType.methodType(boxed).unwrap().returnType().getName();
    }

    private static List<Node<?>> concat(Set<Node<?>> nodes, Node<?> root) {
        List<Node<?>> all = new ArrayList<>(nodes);
        if (!nodes.contains(root)) {
            all.add(root);
        }
        return all;
    }
}

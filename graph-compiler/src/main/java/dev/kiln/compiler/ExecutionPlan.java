package dev.kiln.compiler;

import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Transport;

import java.util.List;
import java.util.Locale;

/**
 * What the compiler made of a graph: one channel per edge that crosses actors, one schedule of
 * READ / COMPUTE / WRITE operations per actor, and how the driver feeds the input and reads
 * the outputs. Plain data: printed by {@link #toString()} and {@link #toDot()}, compared in
 * tests, shipped to the processes that host actors.
 *
 * <p>Participants are actor ids; the driver (the thread calling {@code execute}) is
 * {@link #DRIVER}.
 *
 * @param inputArity   number of positional arguments {@code execute} takes (0 when the input is unused)
 * @param maxInflight  executions in flight at most; the slot count of every channel
 * @param nodes        the graph's nodes in topological order
 * @param channels     the channels; channel 0 carries the input from the driver
 * @param schedules    one schedule per actor, in order of first appearance
 * @param outputs      for each output position, the channel and driver reader index it is read from
 * @param multiOutput  whether the graph was built with {@code Graph.outputs} (results are a list)
 */
public record ExecutionPlan(int inputArity, int maxInflight, List<NodeSpec> nodes, List<ChannelSpec> channels,
                            List<ActorSchedule> schedules, List<OutputRead> outputs, boolean multiOutput) {

    /** The participant id of the driver. */
    public static final int DRIVER = -1;

    /** The id of the channel that carries the input from the driver. */
    public static final int INPUT_CHANNEL = 0;

    /**
     * @param inputArity  input arguments
     * @param maxInflight in-flight bound
     * @param nodes       nodes (copied)
     * @param channels    channels (copied)
     * @param schedules   schedules (copied)
     * @param outputs     outputs (copied)
     * @param multiOutput list-valued results
     */
    public ExecutionPlan {
        nodes = List.copyOf(nodes);
        channels = List.copyOf(channels);
        schedules = List.copyOf(schedules);
        outputs = List.copyOf(outputs);
    }

    /**
     * A node of the compiled graph.
     *
     * @param id       index in {@link #nodes()}, in topological order
     * @param label    {@code input}, {@code input[i]} or {@code actor.method}
     * @param actor    the actor that computes it, or {@link #DRIVER} for the input
     * @param upstream ids of the nodes it reads, in argument order
     */
    public record NodeSpec(int id, String label, int actor, List<Integer> upstream) {
        /**
         * @param id       id
         * @param label    label
         * @param actor    actor id
         * @param upstream upstream ids (copied)
         */
        public NodeSpec {
            upstream = List.copyOf(upstream);
        }
    }

    /**
     * One channel: one writer, several readers, {@code slots} slots of {@code slotBytes}.
     *
     * @param id        channel id, its index in {@link #channels()}
     * @param node      id of the node whose value it carries; -1 for the input channel of a graph that reads no input
     * @param writer    the writing participant
     * @param readers   the reading participants; a reader's index in this list is its reader index
     * @param slots     number of slots (= maxInflight)
     * @param slotBytes bytes per slot for copied values
     * @param transport the resolved transport
     * @param reason    why that transport was chosen
     */
    public record ChannelSpec(int id, int node, int writer, List<Integer> readers, int slots, long slotBytes,
                              Transport transport, String reason) {
        /**
         * @param id        id
         * @param node      node id
         * @param writer    writer
         * @param readers   readers (copied)
         * @param slots     slots
         * @param slotBytes slot bytes
         * @param transport transport
         * @param reason    reason
         */
        public ChannelSpec {
            readers = List.copyOf(readers);
        }
    }

    /**
     * The operations one actor runs, in order, for every execution.
     *
     * @param actor     actor id
     * @param name      actor name
     * @param placement where the actor lives
     * @param frameSize number of local value slots the operations use
     * @param ops       the operations
     */
    public record ActorSchedule(int actor, String name, Topology.ActorPlacement placement, int frameSize,
                                List<Operation> ops) {
        /**
         * @param actor     actor id
         * @param name      actor name
         * @param placement placement
         * @param frameSize frame size
         * @param ops       operations (copied)
         */
        public ActorSchedule {
            ops = List.copyOf(ops);
        }
    }

    /** One step of an actor's schedule. */
    public sealed interface Operation permits Read, Compute, Write {
    }

    /**
     * Wait for the execution's value in a channel and put it into a local.
     *
     * @param channel channel id
     * @param reader  this actor's reader index in that channel
     * @param local   destination local
     */
    public record Read(int channel, int reader, int local) implements Operation {
    }

    /**
     * Call a method on the actor with arguments from locals, the input or constants, result into a local.
     *
     * @param node   node id
     * @param method the method
     * @param args   where each argument comes from
     * @param local  destination local
     */
    public record Compute(int node, MethodRef method, List<Arg> args, int local) implements Operation {
        /**
         * @param node   node id
         * @param method method
         * @param args   arguments (copied; may hold null constants)
         * @param local  local
         */
        public Compute {
            args = List.copyOf(args);
        }
    }

    /**
     * Publish a local into a channel.
     *
     * @param channel channel id
     * @param local   source local
     */
    public record Write(int channel, int local) implements Operation {
    }

    /** Where a method argument comes from. */
    public sealed interface Arg permits LocalArg, InputArg, ConstantArg {
    }

    /**
     * A value computed or read earlier in the same execution.
     *
     * @param local the local
     */
    public record LocalArg(int local) implements Arg {
    }

    /**
     * Positional argument {@code index} of the input record held in {@code local}.
     *
     * @param local the local holding the input record
     * @param index the argument position
     */
    public record InputArg(int local, int index) implements Arg {
    }

    /**
     * A constant passed to every execution.
     *
     * @param value the constant, possibly null
     */
    public record ConstantArg(Object value) implements Arg {
    }

    /**
     * Where the driver reads one output.
     *
     * @param channel channel id
     * @param reader  the driver's reader index in that channel
     */
    public record OutputRead(int channel, int reader) {
    }

    /** @return the plan as readable text: channels, then each actor's schedule */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("ExecutionPlan: ").append(count(schedules.size(), "actor")).append(", ")
                .append(count(channels.size(), "channel")).append(", ").append(count(inputArity, "input arg")).append(", ")
                .append(count(outputs.size(), "output")).append(multiOutput ? " (list)" : "")
                .append(", maxInflight ").append(maxInflight).append('\n');
        sb.append("channels:\n");
        for (ChannelSpec c : channels) {
            sb.append(String.format(Locale.ROOT, "  c%d %s: %s -> %s, %s (%s), %s\n", c.id,
                    c.node < 0 ? "input" : nodes.get(c.node).label,
                    participant(c.writer), c.readers.stream().map(this::participant).toList(), c.transport, c.reason,
                    count(c.slots, "slot")));
        }
        for (ActorSchedule s : schedules) {
            sb.append("actor ").append(s.name).append(" @ ").append(s.placement).append(":\n");
            for (Operation op : s.ops) {
                sb.append("  ").append(describe(op)).append('\n');
            }
        }
        sb.append("driver: WRITE c").append(INPUT_CHANNEL).append(", READ ");
        sb.append(String.join(", ", outputs.stream().map(o -> "c" + o.channel).toList())).append('\n');
        return sb.toString();
    }

    /** @return the plan as a Graphviz DOT digraph: one cluster per actor, edges labelled with their channel */
    public String toDot() {
        StringBuilder sb = new StringBuilder("digraph kiln {\n  rankdir=LR;\n  node [shape=box];\n");
        sb.append("  subgraph cluster_driver {\n    label=\"driver\";\n");
        sb.append("    n_in [label=\"input\", shape=ellipse];\n    n_out [label=\"output\", shape=ellipse];\n  }\n");
        for (ActorSchedule s : schedules) {
            sb.append("  subgraph cluster_a").append(s.actor).append(" {\n    label=\"").append(escape(s.name)).append("\";\n");
            for (Operation op : s.ops) {
                if (op instanceof Compute c) {
                    sb.append("    n").append(c.node).append(" [label=\"").append(escape(nodes.get(c.node).label)).append("\"];\n");
                }
            }
            sb.append("  }\n");
        }
        for (NodeSpec n : nodes) {
            if (n.actor == DRIVER) {
                continue;
            }
            for (int up : n.upstream) {
                NodeSpec from = nodes.get(up);
                String source = from.actor == DRIVER ? "n_in" : "n" + up;
                sb.append("  ").append(source).append(" -> n").append(n.id).append(" [label=\"")
                        .append(edgeLabel(from, n.actor)).append("\"];\n");
            }
        }
        for (OutputRead o : outputs) {
            ChannelSpec c = channels.get(o.channel);
            sb.append("  n").append(c.node).append(" -> n_out [label=\"c").append(c.id).append(' ')
                    .append(c.transport).append("\"];\n");
        }
        return sb.append("}\n").toString();
    }

    private String edgeLabel(NodeSpec from, int readerActor) {
        if (from.actor == readerActor) {
            return "local";
        }
        for (ChannelSpec c : channels) {
            if (c.node == from.id || (from.actor == DRIVER && c.id == INPUT_CHANNEL)) {
                return "c" + c.id + " " + c.transport;
            }
        }
        throw new IllegalStateException("no channel for " + from.label);
    }

    private String describe(Operation op) {
        return switch (op) {
            case Read r -> String.format(Locale.ROOT, "READ    c%d -> l%d", r.channel, r.local);
            case Write w -> String.format(Locale.ROOT, "WRITE   l%d -> c%d", w.local, w.channel);
            case Compute c -> String.format(Locale.ROOT, "COMPUTE %s(%s) -> l%d", c.method.displayName(),
                    String.join(", ", c.args.stream().map(this::describe).toList()), c.local);
        };
    }

    private String describe(Arg arg) {
        return switch (arg) {
            case LocalArg l -> "l" + l.local;
            case InputArg i -> inputArity > 1 ? "l" + i.local + "[" + i.index + "]" : "l" + i.local;
            case ConstantArg k -> k.value instanceof String s ? '"' + s + '"' : String.valueOf(k.value);
        };
    }

    private static String count(int n, String noun) {
        return n + " " + noun + (n == 1 ? "" : "s");
    }

    private String participant(int id) {
        if (id == DRIVER) {
            return "driver";
        }
        for (ActorSchedule s : schedules) {
            if (s.actor == id) {
                return s.name;
            }
        }
        return "actor#" + id;
    }

    private static String escape(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }
}

package dev.kiln;

import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.Arg;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.ConstantArg;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.graph.MethodRef;
import dev.kiln.graph.Transport;
import dev.kiln.transport.ValueCodec;

import java.util.HashMap;
import java.util.Map;
import java.util.function.IntPredicate;

/**
 * The compile-time check that every value a plan sends to another JVM can go there, as far as the declared types
 * show: the return type of the method that writes a channel between processes, the parameter type of each method
 * that reads one, and the class of each constant sent to an actor in another JVM. A type no value of which could
 * cross (a lock, a thread, a stream; an unregistered record, enum or final class) fails the compile, naming the
 * edge, the type and what to do; an open type ({@code Object}, an interface) is left to the values, which fail their
 * execution with the same advice. A plan whose values all stay in their JVM is not looked at (and Fory not loaded).
 */
final class CrossingTypes {

    private CrossingTypes() {
    }

    /**
     * @param plan   the compiled plan
     * @param codec  the runtime's codec, with its registered classes
     * @param remote whether an actor id lives in another JVM than the driver
     * @throws GraphCompileException naming the first edge whose declared type cannot cross
     */
    static void check(ExecutionPlan plan, ValueCodec codec, IntPredicate remote) {
        Map<Integer, Compute> producers = new HashMap<>();
        for (ActorSchedule s : plan.schedules()) {
            for (Operation op : s.ops()) {
                if (op instanceof Compute c) {
                    producers.put(c.node(), c);
                }
            }
        }
        for (ChannelSpec c : plan.channels()) {
            Compute producer = producers.get(c.node());
            if (crosses(c) && producer != null) {
                check(codec, producer.method().returnType(), producer.method().displayName(),
                        "the result of " + producer.method().displayName() + " (declared " + producer.method()
                                .returnType().getName() + ") goes to another JVM through c" + c.id());
            }
        }
        for (ActorSchedule s : plan.schedules()) {
            Map<Integer, ChannelSpec> crossingLocals = new HashMap<>();
            for (Operation op : s.ops()) {
                if (op instanceof Read r && crosses(plan.channels().get(r.channel()))) {
                    crossingLocals.put(r.local(), plan.channels().get(r.channel()));
                } else if (op instanceof Compute c) {
                    checkArguments(plan, codec, remote.test(s.actor()), crossingLocals, c);
                }
            }
        }
    }

    private static void checkArguments(ExecutionPlan plan, ValueCodec codec, boolean remoteActor,
                                       Map<Integer, ChannelSpec> crossingLocals, Compute c) {
        MethodRef m = c.method();
        for (int i = 0; i < c.args().size(); i++) {
            Arg arg = c.args().get(i);
            Class<?> declared = m.parameterTypes().get(i);
            ChannelSpec from = switch (arg) {
                case LocalArg l -> crossingLocals.get(l.local());
                case InputArg in -> crossingLocals.get(in.local());
                case ConstantArg ignored -> null;
            };
            if (from != null) {
                String source = from.node() >= 0 ? plan.nodes().get(from.node()).label() : "input";
                check(codec, declared, m.displayName(), "argument " + i + " of " + m.displayName() + " (declared "
                        + declared.getName() + ") comes from " + source + " in another JVM through c" + from.id());
            } else if (arg instanceof ConstantArg k && k.value() != null && remoteActor) {
                check(codec, k.value().getClass(), m.displayName(), "constant argument " + i + " of "
                        + m.displayName() + " (a " + k.value().getClass().getName() + ") goes to its actor's JVM");
            }
        }
    }

    private static boolean crosses(ChannelSpec c) {
        return c.transport() == Transport.SHARED_MEMORY || c.transport() == Transport.AERON_UDP;
    }

    private static void check(ValueCodec codec, Class<?> type, String node, String edge) {
        String why = codec.refusal(type);
        if (why != null) {
            throw new GraphCompileException(node, edge + ", but it cannot cross: " + why);
        }
    }
}

package dev.kiln.executor;

/**
 * Checks, before Aeron or Agrona start, that this JVM was given the flag they need, so that a missing one is an
 * error that names the flag and the fix rather than an {@link IllegalAccessError} from deep inside Agrona. The
 * embedded default (actors on threads of this JVM) needs no flag and never calls this.
 */
public final class JvmFlags {

    /** The flag Agrona 2.x needs: it uses {@code jdk.internal.misc.Unsafe}. */
    public static final String ADD_EXPORTS = "--add-exports java.base/jdk.internal.misc=ALL-UNNAMED";

    private JvmFlags() {
    }

    /**
     * @param what what needs Aeron, for the message (e.g. "a worker JVM")
     * @throws IllegalStateException if {@code jdk.internal.misc} is not exported to Agrona's module, naming the
     *                               flag and where to put it
     */
    public static void requireAeron(String what) {
        Module agrona = org.agrona.DirectBuffer.class.getModule();
        if (!Object.class.getModule().isExported("jdk.internal.misc", agrona)) {
            String to = agrona.isNamed() ? agrona.getName() : "ALL-UNNAMED";
            throw new IllegalStateException(what + " needs Aeron, whose Agrona uses jdk.internal.misc.Unsafe, but this"
                    + " JVM does not export it: start the JVM with --add-exports java.base/jdk.internal.misc=" + to
                    + " (with --enable-native-access=ALL-UNNAMED and --sun-misc-unsafe-memory-access=allow; in Maven,"
                    + " in surefire's argLine or exec's arguments; see the README's \"JVM flags\"). Worker JVMs get"
                    + " the driver's flags. Actors on threads of this JVM (the embedded default) need none.");
        }
    }
}

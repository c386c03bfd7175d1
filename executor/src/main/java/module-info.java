/**
 * Kiln's runtime: {@link dev.kiln.Kiln} hosts actors, compiles graphs and runs them. The only exported package is
 * {@code dev.kiln}; {@code dev.kiln.executor} and {@code dev.kiln.executor.wire} are internal.
 */
@SuppressWarnings("requires-automatic") // Agrona and Aeron are automatic modules (Automatic-Module-Name)
module dev.kiln.executor {
    requires transitive dev.kiln.graphcompiler;
    requires transitive dev.kiln.transports;
    requires org.agrona;
    requires io.aeron.client;
    requires io.aeron.driver;
    requires java.management;
    requires jdk.jfr;

    exports dev.kiln;
}

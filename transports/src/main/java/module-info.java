/**
 * Kiln's channels (in process, shared memory, Aeron UDP, GPU) and the value codec that carries values between
 * JVMs.
 *
 * <p>One package is exported: {@code dev.kiln.transport.gpu}, the GPU SPI that GPU actors use ({@code GpuKernel},
 * {@code DeviceOps}, {@code SimulatedGpus}, {@code SimulatedDeviceOps}); its channel classes are Kiln's internals,
 * built by the runtime from a compiled plan. {@code dev.kiln.transport} (channels, the value codec) and
 * {@code dev.kiln.transport.control} (the control protocol) are exported to the executor only.
 */
@SuppressWarnings({"module", "requires-automatic"}) // exports to a module built after this one; Agrona, Aeron, Fory are automatic modules
module dev.kiln.transports {
    requires transitive dev.kiln.graphcompiler;
    requires transitive dev.kiln.nativebindings;
    requires org.agrona;
    requires io.aeron.client;
    requires org.apache.fory.core;
    // JoinHandshake reads the current user through com.sun.security.auth.module.UnixSystem.
    requires jdk.security.auth;

    exports dev.kiln.transport.gpu;
    exports dev.kiln.transport to dev.kiln.executor;
    exports dev.kiln.transport.control to dev.kiln.executor;
}

// Waveform dump for Icarus (`ddfa simulate --waves`): a second root module. cocotb's own
// dump module is SystemVerilog (a `string`), which the -g2005 build cannot take; see
// sim/runner.py. The file lands in the run directory; vvp's -fst makes it FST.
module ddfa_sim_dump;
    initial begin
        $dumpfile("ddfa_sim_top.fst");
        $dumpvars(0, ddfa_sim_top);
    end
endmodule

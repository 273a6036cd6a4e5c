// The ECP5 cells of a synth_ecp5 netlist, for simulation: Yosys's models of the logic
// cells (LUT4, PFUMX, L6MUX21, CCU2C, TRELLIS_FF, TRELLIS_DPR16X4, ... in
// share/ecp5/common_sim.vh and ccu2c_sim.vh, found on the include path). The block RAM
// and the multiplier, which Yosys's share/ecp5/cells_sim.v has as parameter lists only,
// are ecp5_dp16kd.v and ecp5_mult18x18d.v beside this file (boards/netlist.py).
`include "common_sim.vh"
`include "ccu2c_sim.vh"
